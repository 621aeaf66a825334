ALTER TABLE "tokens" ADD COLUMN "previous_hash" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "previous_valid_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "rotated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "endpoints" ADD COLUMN "access" text DEFAULT 'public' NOT NULL;--> statement-breakpoint
CREATE INDEX "tokens_previous_hash" ON "tokens" USING btree ("previous_hash");
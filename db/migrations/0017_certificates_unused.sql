ALTER TABLE "certificates" ADD COLUMN "unused_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "remove_after" timestamp with time zone;
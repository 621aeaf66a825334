ALTER TABLE "apps" DROP CONSTRAINT "apps_org_name";--> statement-breakpoint
ALTER TABLE "apps" ADD COLUMN "scaled_at" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "apps" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "address" text;--> statement-breakpoint
CREATE UNIQUE INDEX "apps_org_name" ON "apps" USING btree ("org_id","name") WHERE "apps"."deleted_at" is null;--> statement-breakpoint
ALTER TABLE "instances" DROP COLUMN "host_address";--> statement-breakpoint
ALTER TABLE "instances" DROP COLUMN "host_ports";
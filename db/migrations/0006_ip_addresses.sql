CREATE TABLE "ip_addresses" (
	"address" text PRIMARY KEY NOT NULL,
	"family" text NOT NULL,
	"pool" text NOT NULL,
	"org_id" text,
	"app_id" text,
	"allocated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"released_at" timestamp with time zone,
	"reusable_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "ip_addresses" ADD CONSTRAINT "ip_addresses_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "ip_addresses_app_id" ON "ip_addresses" USING btree ("app_id");--> statement-breakpoint
CREATE INDEX "ip_addresses_pool" ON "ip_addresses" USING btree ("pool");
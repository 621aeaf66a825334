CREATE TABLE "app_leases" (
	"app_id" text PRIMARY KEY NOT NULL,
	"epoch" bigint NOT NULL,
	"holder" text NOT NULL,
	"acquired_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "app_leases" ADD CONSTRAINT "app_leases_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deployments_app_id" ON "deployments" USING btree ("app_id","created_at");--> statement-breakpoint
CREATE INDEX "instances_app_id" ON "instances" USING btree ("app_id");
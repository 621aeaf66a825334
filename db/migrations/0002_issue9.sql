CREATE TABLE "port_claims" (
	"address" text NOT NULL,
	"port" integer NOT NULL,
	"name" text NOT NULL,
	"mode" text NOT NULL,
	"app_id" text NOT NULL,
	"endpoint_id" text NOT NULL,
	CONSTRAINT "port_claims_address_port_name" UNIQUE("address","port","name")
);
--> statement-breakpoint
CREATE TABLE "port_modes" (
	"address" text NOT NULL,
	"port" integer NOT NULL,
	"mode" text NOT NULL,
	CONSTRAINT "port_modes_pkey" PRIMARY KEY("address","port"),
	CONSTRAINT "port_modes_address_port_mode" UNIQUE("address","port","mode")
);
--> statement-breakpoint
CREATE TABLE "edges" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"version" text NOT NULL,
	"pid" integer NOT NULL,
	"workers" integer NOT NULL,
	"applied_version" bigint,
	"last_error" text,
	"report" jsonb NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "apps" DROP CONSTRAINT "apps_org_name";--> statement-breakpoint
ALTER TABLE "apps" ADD COLUMN "scaled_at" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "apps" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "address" text;--> statement-breakpoint
ALTER TABLE "endpoints" ADD COLUMN "revision" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "port_claims" ADD CONSTRAINT "port_claims_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "port_claims" ADD CONSTRAINT "port_claims_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "port_claims" ADD CONSTRAINT "port_claims_mode" FOREIGN KEY ("address","port","mode") REFERENCES "public"."port_modes"("address","port","mode") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "port_claims_app_id" ON "port_claims" USING btree ("app_id");--> statement-breakpoint
CREATE INDEX "port_claims_endpoint_id" ON "port_claims" USING btree ("endpoint_id");--> statement-breakpoint
CREATE UNIQUE INDEX "apps_org_name" ON "apps" USING btree ("org_id","name") WHERE "apps"."deleted_at" is null;--> statement-breakpoint
ALTER TABLE "instances" DROP COLUMN "host_address";--> statement-breakpoint
ALTER TABLE "instances" DROP COLUMN "host_ports";
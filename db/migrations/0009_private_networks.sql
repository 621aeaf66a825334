CREATE TABLE "private_networks" (
	"key" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"name" text NOT NULL,
	"slot" integer NOT NULL,
	"ipv6_subnet" text NOT NULL,
	"ipv4_subnet" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "private_networks_slot" UNIQUE("slot")
);
--> statement-breakpoint
ALTER TABLE "private_networks" ADD CONSTRAINT "private_networks_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;
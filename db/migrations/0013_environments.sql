CREATE TABLE "environments" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"protected" boolean DEFAULT false NOT NULL,
	"base" text,
	"expires_at" timestamp with time zone,
	"warned_at" timestamp with time zone,
	"branch" text,
	"commit" text,
	"pr" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"destroyed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "secrets" (
	"id" text PRIMARY KEY NOT NULL,
	"app_id" text NOT NULL,
	"key" text NOT NULL,
	"version" integer NOT NULL,
	"ciphertext" text,
	"digest" text,
	"key_id" text,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "secrets_app_key_version" UNIQUE("app_id","key","version")
);
--> statement-breakpoint
DROP INDEX "apps_org_name";--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "environments" text;--> statement-breakpoint
ALTER TABLE "apps" ADD COLUMN "environment" text DEFAULT 'production' NOT NULL;--> statement-breakpoint
ALTER TABLE "releases" ADD COLUMN "secrets" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "releases" ADD COLUMN "declared" jsonb;--> statement-breakpoint
ALTER TABLE "environments" ADD CONSTRAINT "environments_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "secrets" ADD CONSTRAINT "secrets_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "environments_org_name" ON "environments" USING btree ("org_id","name") WHERE "environments"."destroyed_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "apps_org_env_name" ON "apps" USING btree ("org_id","environment","name") WHERE "apps"."deleted_at" is null;--> statement-breakpoint
INSERT INTO "environments" ("id", "org_id", "name", "kind", "protected") SELECT 'env_' || substr(md5("id"), 1, 16), "id", 'production', 'persistent', true FROM "orgs";

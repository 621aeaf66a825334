CREATE TABLE "volumes" (
	"id" text PRIMARY KEY NOT NULL,
	"app_id" text NOT NULL,
	"name" text NOT NULL,
	"spec" text,
	"process" text,
	"mount_path" text,
	"slot" integer,
	"node_id" text NOT NULL,
	"driver" text NOT NULL,
	"size_limit_bytes" bigint,
	"per_instance" boolean DEFAULT false NOT NULL,
	"attached_instance_id" text,
	"state" text DEFAULT 'ready' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone,
	"purge_after" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "snapshots" (
	"id" text PRIMARY KEY NOT NULL,
	"app_id" text NOT NULL,
	"volume_id" text,
	"volume_name" text NOT NULL,
	"kind" text NOT NULL,
	"driver" text NOT NULL,
	"consistency" text NOT NULL,
	"bytes" bigint NOT NULL,
	"files" bigint NOT NULL,
	"sha256" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "volumes" ADD CONSTRAINT "volumes_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "volumes" ADD CONSTRAINT "volumes_node_id_nodes_id_fk" FOREIGN KEY ("node_id") REFERENCES "public"."nodes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "volumes_app_name" ON "volumes" USING btree ("app_id","name") WHERE "volumes"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "snapshots_app_id" ON "snapshots" USING btree ("app_id");
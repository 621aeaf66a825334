CREATE TABLE "volume_moves" (
	"id" text PRIMARY KEY NOT NULL,
	"app_id" text NOT NULL,
	"volume_id" text NOT NULL,
	"from_root" text NOT NULL,
	"to_root" text NOT NULL,
	"phase" text NOT NULL,
	"state" text DEFAULT 'running' NOT NULL,
	"instance_id" text,
	"bytes_moved" bigint DEFAULT 0 NOT NULL,
	"downtime_ms" bigint,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retain_until" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "root" text DEFAULT 'default' NOT NULL;--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "root" text DEFAULT 'default' NOT NULL;--> statement-breakpoint
ALTER TABLE "volume_moves" ADD CONSTRAINT "volume_moves_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "volume_moves_one_running" ON "volume_moves" USING btree ("volume_id") WHERE "volume_moves"."state" = 'running';--> statement-breakpoint
CREATE INDEX "volume_moves_app_id" ON "volume_moves" USING btree ("app_id");
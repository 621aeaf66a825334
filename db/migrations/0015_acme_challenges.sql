CREATE TABLE "acme_backoff" (
	"app_id" text NOT NULL,
	"hostname" text NOT NULL,
	"failures" integer NOT NULL,
	"next_at" timestamp with time zone NOT NULL,
	"last_error" text NOT NULL,
	CONSTRAINT "acme_backoff_app_id_hostname_pk" PRIMARY KEY("app_id","hostname")
);
--> statement-breakpoint
CREATE TABLE "acme_challenges" (
	"app_id" text NOT NULL,
	"hostname" text NOT NULL,
	"token" text NOT NULL,
	"cert_pem" text NOT NULL,
	"key_encrypted" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "acme_challenges_app_id_hostname_token_pk" PRIMARY KEY("app_id","hostname","token")
);
--> statement-breakpoint
ALTER TABLE "acme_backoff" ADD CONSTRAINT "acme_backoff_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "acme_challenges" ADD CONSTRAINT "acme_challenges_app_id_apps_id_fk" FOREIGN KEY ("app_id") REFERENCES "public"."apps"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "acme_challenges_expires_at" ON "acme_challenges" USING btree ("expires_at");
CREATE TABLE "agent_queue_daily" (
	"user_id" uuid NOT NULL,
	"queue_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"day" date NOT NULL,
	"count" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_queue_daily_pk" PRIMARY KEY("user_id","queue_id")
);
--> statement-breakpoint
ALTER TABLE "agent_queue_daily" ADD CONSTRAINT "agent_queue_daily_user_id_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."user"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_queue_daily" ADD CONSTRAINT "agent_queue_daily_queue_id_queue_id_fk" FOREIGN KEY ("queue_id") REFERENCES "public"."queue"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_queue_daily" ADD CONSTRAINT "agent_queue_daily_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_state" DROP COLUMN "daily_assigned_count";--> statement-breakpoint
ALTER TABLE "agent_state" DROP COLUMN "daily_assigned_date";
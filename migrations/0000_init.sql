CREATE TABLE "access_profile_queue" (
	"tenant_id" uuid NOT NULL,
	"access_profile_id" uuid NOT NULL,
	"queue_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "access_profile_queue_pk" PRIMARY KEY("access_profile_id","queue_id")
);
--> statement-breakpoint
CREATE TABLE "auto_reply_template" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"subject" text,
	"text" text DEFAULT '' NOT NULL,
	"html" text,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "branded_template" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"html" text NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "business_calendar" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"time_zone" text NOT NULL,
	"intervals" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"holidays" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "canned_response" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"subject" text,
	"text" text DEFAULT '' NOT NULL,
	"html" text,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "email_address" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"address" text NOT NULL,
	"name" text NOT NULL,
	"display_name" text DEFAULT '' NOT NULL,
	"from_address" text,
	"reply_to" text,
	"bcc" text[] DEFAULT '{}'::text[] NOT NULL,
	"account_id" uuid,
	"queue_id" uuid,
	"required_skill_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"language" text,
	"priority" integer,
	"rule_set_id" uuid,
	"spam_routing" text DEFAULT 'TAG' NOT NULL,
	"spam_queue_id" uuid,
	"outbound_allowed" boolean DEFAULT true NOT NULL,
	"force_tls" boolean DEFAULT false NOT NULL,
	"ticket_placement" text DEFAULT 'END' NOT NULL,
	"ticket_delimiter" text DEFAULT 'SQUARE' NOT NULL,
	"threading_mode" text DEFAULT 'REFERENCES_THEN_TICKET' NOT NULL,
	"signature_policy" text DEFAULT 'ALL' NOT NULL,
	"history_policy" text DEFAULT 'ALWAYS' NOT NULL,
	"branded_template_id" uuid,
	"sla_policy_id" uuid,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "email_address_bcc_max5" CHECK (cardinality("email_address"."bcc") <= 5)
);
--> statement-breakpoint
CREATE TABLE "mail_account" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"kind" text DEFAULT 'INBOUND_OUTBOUND' NOT NULL,
	"imap_host" text,
	"imap_port" integer,
	"imap_tls" boolean DEFAULT true NOT NULL,
	"imap_user" text,
	"imap_password_enc" text,
	"imap_mailbox" text DEFAULT 'INBOX' NOT NULL,
	"imap_after_process" text DEFAULT 'SEEN' NOT NULL,
	"imap_move_to" text,
	"smtp_host" text,
	"smtp_port" integer,
	"smtp_tls_mode" text DEFAULT 'STARTTLS' NOT NULL,
	"smtp_user" text,
	"smtp_password_enc" text,
	"status" text DEFAULT 'UNKNOWN' NOT NULL,
	"last_error" text,
	"last_checked_at" timestamp with time zone,
	"enabled" boolean DEFAULT true NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "queue" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"calendar_id" uuid,
	"default_address_id" uuid,
	"strategy" text DEFAULT 'LEAST_ACTIVE' NOT NULL,
	"preferred_agent_mode" text DEFAULT 'WAIT_WHILE_OFFLINE' NOT NULL,
	"preferred_agent_timeout_seconds" integer DEFAULT 3600 NOT NULL,
	"queue_order" text DEFAULT 'PRIORITY_SCORE' NOT NULL,
	"default_priority" integer DEFAULT 0 NOT NULL,
	"auto_assign" boolean DEFAULT true NOT NULL,
	"daily_auto_assign_limit" integer,
	"auto_assign_only_in_business_hours" boolean DEFAULT false NOT NULL,
	"auto_assign_only_logged_in" boolean DEFAULT true NOT NULL,
	"routable_presences" text[] DEFAULT '{AVAILABLE}'::text[] NOT NULL,
	"offer_required" boolean DEFAULT false NOT NULL,
	"offer_timeout_seconds" integer DEFAULT 120 NOT NULL,
	"manual_parking_allowed" boolean DEFAULT true NOT NULL,
	"auto_parking" boolean DEFAULT false NOT NULL,
	"auto_park_spacing_seconds" integer DEFAULT 30 NOT NULL,
	"present_next_when_all_parked" boolean DEFAULT false NOT NULL,
	"customer_response_countdown_minutes" integer,
	"sla_policy_id" uuid,
	"signature_id" uuid,
	"auto_reply_template_id" uuid,
	"auto_reply_on_new" boolean DEFAULT false NOT NULL,
	"auto_reply_on_closed" boolean DEFAULT false NOT NULL,
	"auto_reply_on_paused" boolean DEFAULT false NOT NULL,
	"auto_reply_on_idle" boolean DEFAULT false NOT NULL,
	"auto_reply_idle_days" integer DEFAULT 15 NOT NULL,
	"auto_reply_address_id" uuid,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "queue_address" (
	"tenant_id" uuid NOT NULL,
	"queue_id" uuid NOT NULL,
	"address_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "queue_address_pk" PRIMARY KEY("queue_id","address_id")
);
--> statement-breakpoint
CREATE TABLE "queue_member" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"queue_id" uuid NOT NULL,
	"user_id" uuid,
	"team_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "queue_member_one_of" CHECK (("queue_member"."user_id" IS NULL) <> ("queue_member"."team_id" IS NULL))
);
--> statement-breakpoint
CREATE TABLE "signature" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"text" text DEFAULT '' NOT NULL,
	"html" text,
	"user_id" uuid,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sla_policy" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"first_response_minutes" integer,
	"next_response_minutes" integer,
	"resolution_minutes" integer,
	"warning_percent" integer DEFAULT 80 NOT NULL,
	"calendar_id" uuid,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "agent_state" (
	"user_id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"active_conversation_id" uuid,
	"last_assigned_at" timestamp with time zone,
	"last_auto_delivered_at" timestamp with time zone,
	"daily_assigned_count" integer DEFAULT 0 NOT NULL,
	"daily_assigned_date" date,
	"interrupted_conversation_id" uuid,
	"interrupted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "attachment" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"message_id" uuid NOT NULL,
	"filename" text NOT NULL,
	"content_type" text NOT NULL,
	"size_bytes" integer NOT NULL,
	"content_id" text,
	"inline" boolean DEFAULT false NOT NULL,
	"sha256" text NOT NULL,
	"data" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "contact" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"email" text NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"preferred_agent_id" uuid,
	"preferred_agent_at" timestamp with time zone,
	"undeliverable" boolean DEFAULT false NOT NULL,
	"undeliverable_reason" text,
	"attributes" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "conversation" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"ticket_number" bigint NOT NULL,
	"subject" text DEFAULT '' NOT NULL,
	"status" text DEFAULT 'NEW' NOT NULL,
	"contact_id" uuid NOT NULL,
	"address_id" uuid,
	"queue_id" uuid,
	"required_skill_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"language" text,
	"priority" integer DEFAULT 0 NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"spam" boolean DEFAULT false NOT NULL,
	"work_state" text DEFAULT 'WAITING' NOT NULL,
	"assignee_id" uuid,
	"enqueued_at" timestamp with time zone,
	"offered_to_id" uuid,
	"offer_expires_at" timestamp with time zone,
	"offer_excluded_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"assigned_at" timestamp with time zone,
	"handle_time_ms" bigint DEFAULT 0 NOT NULL,
	"active_since" timestamp with time zone,
	"previous_conversation_id" uuid,
	"received_at" timestamp with time zone NOT NULL,
	"last_inbound_at" timestamp with time zone,
	"last_outbound_at" timestamp with time zone,
	"last_activity_at" timestamp with time zone NOT NULL,
	"first_responded_at" timestamp with time zone,
	"status_changed_at" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	"closed_at" timestamp with time zone,
	"sla_policy_id" uuid,
	"sla_state" jsonb,
	"first_response_due_at" timestamp with time zone,
	"next_response_due_at" timestamp with time zone,
	"resolution_due_at" timestamp with time zone,
	"sla_breached" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "event" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"conversation_id" uuid,
	"queue_id" uuid,
	"agent_id" uuid,
	"type" text NOT NULL,
	"actor_type" text DEFAULT 'SYSTEM' NOT NULL,
	"actor_id" uuid,
	"payload" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"tx_id" "xid8" DEFAULT pg_current_xact_id() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "mailbox_checkpoint" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"account_id" uuid NOT NULL,
	"mailbox" text NOT NULL,
	"uid_validity" bigint NOT NULL,
	"last_uid" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "message" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"conversation_id" uuid NOT NULL,
	"direction" text NOT NULL,
	"message_id_header" text,
	"in_reply_to" text,
	"references" text[] DEFAULT '{}'::text[] NOT NULL,
	"from" jsonb,
	"to" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"cc" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"bcc" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"reply_to" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"subject" text DEFAULT '' NOT NULL,
	"text" text DEFAULT '' NOT NULL,
	"html" text,
	"remote_resources" text[] DEFAULT '{}'::text[] NOT NULL,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"parse_warnings" text[] DEFAULT '{}'::text[] NOT NULL,
	"date_header" timestamp with time zone,
	"received_at" timestamp with time zone NOT NULL,
	"author_id" uuid,
	"auto_submitted" boolean DEFAULT false NOT NULL,
	"is_auto_reply" boolean DEFAULT false NOT NULL,
	"spam" boolean DEFAULT false NOT NULL,
	"outbound_status" text,
	"outbound_error" text,
	"send_attempts" integer DEFAULT 0 NOT NULL,
	"sent_at" timestamp with time zone,
	"address_id" uuid,
	"account_id" uuid,
	"uid_validity" bigint,
	"uid" bigint,
	"content_hash" text,
	"raw_message_id" uuid,
	"size_bytes" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "raw_message" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"sha256" text NOT NULL,
	"size_bytes" integer NOT NULL,
	"data" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rejected_message" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"account_id" uuid,
	"address_id" uuid,
	"reason" text NOT NULL,
	"detail" text DEFAULT '' NOT NULL,
	"size_bytes" integer NOT NULL,
	"message_id_header" text,
	"from_address" text,
	"subject" text,
	"uid_validity" bigint,
	"uid" bigint,
	"raw_message_id" uuid,
	"received_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "access_profile" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"all_queues" boolean DEFAULT false NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "agent_skill" (
	"tenant_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"skill_id" uuid NOT NULL,
	"proficiency" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_skill_pk" PRIMARY KEY("user_id","skill_id")
);
--> statement-breakpoint
CREATE TABLE "api_key" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"secret_hash" text NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "skill" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "team" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"inbox_limit" integer,
	"inbox_limit_off" boolean DEFAULT false NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tenant" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"company" text DEFAULT '' NOT NULL,
	"time_zone" text DEFAULT 'UTC' NOT NULL,
	"email_enabled" boolean DEFAULT true NOT NULL,
	"processing_limit" integer,
	"append_ticket_on_first_reply" boolean DEFAULT false NOT NULL,
	"agents_may_edit_subject" boolean DEFAULT false NOT NULL,
	"active_to_paused_days" integer DEFAULT 30,
	"paused_to_closed_days" integer DEFAULT 60,
	"resolved_to_closed_days" integer DEFAULT 30,
	"reopen_enabled" boolean DEFAULT true NOT NULL,
	"reopen_window_days" integer DEFAULT 30 NOT NULL,
	"retention_days" integer,
	"auto_reply_limit_per_sender" integer DEFAULT 5 NOT NULL,
	"auto_reply_limit_window_minutes" integer DEFAULT 120 NOT NULL,
	"default_sla_policy_id" uuid,
	"message_id_domain" text,
	"role_permissions" jsonb DEFAULT '{"ADMIN":["REPLY_INBOUND","START_OUTBOUND","FORWARD","EDIT_SUBJECT","CHANGE_FROM","SEE_BCC","TRANSFER"],"SUPERVISOR":["REPLY_INBOUND","START_OUTBOUND","FORWARD","EDIT_SUBJECT","CHANGE_FROM","SEE_BCC","TRANSFER"],"AGENT":["REPLY_INBOUND","START_OUTBOUND","FORWARD","TRANSFER"]}'::jsonb NOT NULL,
	"next_ticket_number" bigint DEFAULT 100001 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "user" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"email" text NOT NULL,
	"name" text NOT NULL,
	"alias" text,
	"role" text NOT NULL,
	"team_id" uuid,
	"access_profile_id" uuid,
	"inbox_limit" integer,
	"inbox_limit_off" boolean DEFAULT false NOT NULL,
	"presence" text DEFAULT 'OFFLINE' NOT NULL,
	"presence_reason" text,
	"presence_changed_at" timestamp with time zone,
	"logged_in" boolean DEFAULT false NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "access_profile_queue" ADD CONSTRAINT "access_profile_queue_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_profile_queue" ADD CONSTRAINT "access_profile_queue_access_profile_id_access_profile_id_fk" FOREIGN KEY ("access_profile_id") REFERENCES "public"."access_profile"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_profile_queue" ADD CONSTRAINT "access_profile_queue_queue_id_queue_id_fk" FOREIGN KEY ("queue_id") REFERENCES "public"."queue"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "auto_reply_template" ADD CONSTRAINT "auto_reply_template_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "branded_template" ADD CONSTRAINT "branded_template_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "business_calendar" ADD CONSTRAINT "business_calendar_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "canned_response" ADD CONSTRAINT "canned_response_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "email_address" ADD CONSTRAINT "email_address_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "email_address" ADD CONSTRAINT "email_address_account_id_mail_account_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."mail_account"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "email_address" ADD CONSTRAINT "email_address_queue_id_queue_id_fk" FOREIGN KEY ("queue_id") REFERENCES "public"."queue"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "email_address" ADD CONSTRAINT "email_address_spam_queue_id_queue_id_fk" FOREIGN KEY ("spam_queue_id") REFERENCES "public"."queue"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "email_address" ADD CONSTRAINT "email_address_branded_template_id_branded_template_id_fk" FOREIGN KEY ("branded_template_id") REFERENCES "public"."branded_template"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "email_address" ADD CONSTRAINT "email_address_sla_policy_id_sla_policy_id_fk" FOREIGN KEY ("sla_policy_id") REFERENCES "public"."sla_policy"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mail_account" ADD CONSTRAINT "mail_account_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue" ADD CONSTRAINT "queue_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue" ADD CONSTRAINT "queue_calendar_id_business_calendar_id_fk" FOREIGN KEY ("calendar_id") REFERENCES "public"."business_calendar"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue" ADD CONSTRAINT "queue_sla_policy_id_sla_policy_id_fk" FOREIGN KEY ("sla_policy_id") REFERENCES "public"."sla_policy"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue" ADD CONSTRAINT "queue_signature_id_signature_id_fk" FOREIGN KEY ("signature_id") REFERENCES "public"."signature"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue" ADD CONSTRAINT "queue_auto_reply_template_id_auto_reply_template_id_fk" FOREIGN KEY ("auto_reply_template_id") REFERENCES "public"."auto_reply_template"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_address" ADD CONSTRAINT "queue_address_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_address" ADD CONSTRAINT "queue_address_queue_id_queue_id_fk" FOREIGN KEY ("queue_id") REFERENCES "public"."queue"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_address" ADD CONSTRAINT "queue_address_address_id_email_address_id_fk" FOREIGN KEY ("address_id") REFERENCES "public"."email_address"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_member" ADD CONSTRAINT "queue_member_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_member" ADD CONSTRAINT "queue_member_queue_id_queue_id_fk" FOREIGN KEY ("queue_id") REFERENCES "public"."queue"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_member" ADD CONSTRAINT "queue_member_user_id_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."user"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "queue_member" ADD CONSTRAINT "queue_member_team_id_team_id_fk" FOREIGN KEY ("team_id") REFERENCES "public"."team"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signature" ADD CONSTRAINT "signature_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signature" ADD CONSTRAINT "signature_user_id_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."user"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sla_policy" ADD CONSTRAINT "sla_policy_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sla_policy" ADD CONSTRAINT "sla_policy_calendar_id_business_calendar_id_fk" FOREIGN KEY ("calendar_id") REFERENCES "public"."business_calendar"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_state" ADD CONSTRAINT "agent_state_user_id_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."user"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_state" ADD CONSTRAINT "agent_state_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attachment" ADD CONSTRAINT "attachment_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attachment" ADD CONSTRAINT "attachment_message_id_message_id_fk" FOREIGN KEY ("message_id") REFERENCES "public"."message"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "contact" ADD CONSTRAINT "contact_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "contact" ADD CONSTRAINT "contact_preferred_agent_id_user_id_fk" FOREIGN KEY ("preferred_agent_id") REFERENCES "public"."user"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation" ADD CONSTRAINT "conversation_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation" ADD CONSTRAINT "conversation_contact_id_contact_id_fk" FOREIGN KEY ("contact_id") REFERENCES "public"."contact"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation" ADD CONSTRAINT "conversation_address_id_email_address_id_fk" FOREIGN KEY ("address_id") REFERENCES "public"."email_address"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation" ADD CONSTRAINT "conversation_queue_id_queue_id_fk" FOREIGN KEY ("queue_id") REFERENCES "public"."queue"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation" ADD CONSTRAINT "conversation_assignee_id_user_id_fk" FOREIGN KEY ("assignee_id") REFERENCES "public"."user"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation" ADD CONSTRAINT "conversation_offered_to_id_user_id_fk" FOREIGN KEY ("offered_to_id") REFERENCES "public"."user"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "event" ADD CONSTRAINT "event_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mailbox_checkpoint" ADD CONSTRAINT "mailbox_checkpoint_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mailbox_checkpoint" ADD CONSTRAINT "mailbox_checkpoint_account_id_mail_account_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."mail_account"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message" ADD CONSTRAINT "message_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message" ADD CONSTRAINT "message_conversation_id_conversation_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversation"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message" ADD CONSTRAINT "message_author_id_user_id_fk" FOREIGN KEY ("author_id") REFERENCES "public"."user"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message" ADD CONSTRAINT "message_address_id_email_address_id_fk" FOREIGN KEY ("address_id") REFERENCES "public"."email_address"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message" ADD CONSTRAINT "message_account_id_mail_account_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."mail_account"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message" ADD CONSTRAINT "message_raw_message_id_raw_message_id_fk" FOREIGN KEY ("raw_message_id") REFERENCES "public"."raw_message"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "raw_message" ADD CONSTRAINT "raw_message_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rejected_message" ADD CONSTRAINT "rejected_message_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rejected_message" ADD CONSTRAINT "rejected_message_account_id_mail_account_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."mail_account"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rejected_message" ADD CONSTRAINT "rejected_message_address_id_email_address_id_fk" FOREIGN KEY ("address_id") REFERENCES "public"."email_address"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rejected_message" ADD CONSTRAINT "rejected_message_raw_message_id_raw_message_id_fk" FOREIGN KEY ("raw_message_id") REFERENCES "public"."raw_message"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_profile" ADD CONSTRAINT "access_profile_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_skill" ADD CONSTRAINT "agent_skill_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_skill" ADD CONSTRAINT "agent_skill_user_id_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."user"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_skill" ADD CONSTRAINT "agent_skill_skill_id_skill_id_fk" FOREIGN KEY ("skill_id") REFERENCES "public"."skill"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_user_id_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."user"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "skill" ADD CONSTRAINT "skill_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "team" ADD CONSTRAINT "team_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user" ADD CONSTRAINT "user_tenant_id_tenant_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenant"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user" ADD CONSTRAINT "user_team_id_team_id_fk" FOREIGN KEY ("team_id") REFERENCES "public"."team"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user" ADD CONSTRAINT "user_access_profile_id_access_profile_id_fk" FOREIGN KEY ("access_profile_id") REFERENCES "public"."access_profile"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "email_address_address_uq" ON "email_address" USING btree (lower("address"));--> statement-breakpoint
CREATE INDEX "email_address_tenant_idx" ON "email_address" USING btree ("tenant_id");--> statement-breakpoint
CREATE UNIQUE INDEX "queue_tenant_name_uq" ON "queue" USING btree ("tenant_id",lower("name")) WHERE archived_at IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "queue_member_user_uq" ON "queue_member" USING btree ("queue_id","user_id") WHERE user_id IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "queue_member_team_uq" ON "queue_member" USING btree ("queue_id","team_id") WHERE team_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "queue_member_user_idx" ON "queue_member" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "queue_member_team_idx" ON "queue_member" USING btree ("team_id");--> statement-breakpoint
CREATE UNIQUE INDEX "signature_user_uq" ON "signature" USING btree ("user_id") WHERE user_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "attachment_message_idx" ON "attachment" USING btree ("message_id");--> statement-breakpoint
CREATE UNIQUE INDEX "contact_tenant_email_uq" ON "contact" USING btree ("tenant_id","email");--> statement-breakpoint
CREATE UNIQUE INDEX "conversation_tenant_ticket_uq" ON "conversation" USING btree ("tenant_id","ticket_number");--> statement-breakpoint
CREATE INDEX "conversation_waiting_idx" ON "conversation" USING btree ("tenant_id","queue_id","enqueued_at") WHERE work_state = 'WAITING';--> statement-breakpoint
CREATE INDEX "conversation_assignee_idx" ON "conversation" USING btree ("assignee_id") WHERE assignee_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "conversation_contact_idx" ON "conversation" USING btree ("contact_id");--> statement-breakpoint
CREATE INDEX "conversation_tenant_status_idx" ON "conversation" USING btree ("tenant_id","status");--> statement-breakpoint
CREATE INDEX "conversation_tenant_activity_idx" ON "conversation" USING btree ("tenant_id","last_activity_at");--> statement-breakpoint
CREATE INDEX "event_tx_idx" ON "event" USING btree ("tx_id","id");--> statement-breakpoint
CREATE INDEX "event_tenant_tx_idx" ON "event" USING btree ("tenant_id","tx_id","id");--> statement-breakpoint
CREATE INDEX "event_conversation_idx" ON "event" USING btree ("conversation_id","id") WHERE conversation_id IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "mailbox_checkpoint_account_mailbox_uq" ON "mailbox_checkpoint" USING btree ("account_id","mailbox");--> statement-breakpoint
CREATE INDEX "message_conversation_idx" ON "message" USING btree ("conversation_id","received_at");--> statement-breakpoint
CREATE INDEX "message_tenant_msgid_idx" ON "message" USING btree ("tenant_id","message_id_header");--> statement-breakpoint
CREATE UNIQUE INDEX "message_imap_uid_uq" ON "message" USING btree ("account_id","uid_validity","uid") WHERE uid IS NOT NULL;--> statement-breakpoint
CREATE INDEX "message_tenant_hash_idx" ON "message" USING btree ("tenant_id","content_hash");--> statement-breakpoint
CREATE INDEX "message_outbound_idx" ON "message" USING btree ("outbound_status") WHERE outbound_status IS NOT NULL;--> statement-breakpoint
CREATE INDEX "rejected_message_tenant_idx" ON "rejected_message" USING btree ("tenant_id","received_at");--> statement-breakpoint
CREATE UNIQUE INDEX "rejected_message_imap_uid_uq" ON "rejected_message" USING btree ("account_id","uid_validity","uid") WHERE uid IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "access_profile_tenant_name_uq" ON "access_profile" USING btree ("tenant_id",lower("name")) WHERE archived_at IS NULL;--> statement-breakpoint
CREATE INDEX "agent_skill_skill_idx" ON "agent_skill" USING btree ("skill_id");--> statement-breakpoint
CREATE UNIQUE INDEX "api_key_prefix_uq" ON "api_key" USING btree ("prefix");--> statement-breakpoint
CREATE INDEX "api_key_user_idx" ON "api_key" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "skill_tenant_name_uq" ON "skill" USING btree ("tenant_id",lower("name"));--> statement-breakpoint
CREATE UNIQUE INDEX "team_tenant_name_uq" ON "team" USING btree ("tenant_id",lower("name")) WHERE archived_at IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "user_tenant_email_uq" ON "user" USING btree ("tenant_id",lower("email"));--> statement-breakpoint
CREATE INDEX "user_team_idx" ON "user" USING btree ("team_id");
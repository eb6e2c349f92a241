ALTER TABLE "rejected_message" ADD COLUMN "released_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "rejected_message" ADD COLUMN "released_message_id" uuid;
CREATE TABLE "message_search" (
	"message_id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"conversation_id" uuid NOT NULL,
	"document" "tsvector" NOT NULL
);
--> statement-breakpoint
CREATE TABLE "message_search_queue" (
	"message_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"enqueued_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "message_search" ADD CONSTRAINT "message_search_message_id_message_id_fk" FOREIGN KEY ("message_id") REFERENCES "public"."message"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "message_search_document_idx" ON "message_search" USING gin ("document");--> statement-breakpoint
CREATE INDEX "message_search_conversation_idx" ON "message_search" USING btree ("conversation_id");--> statement-breakpoint
CREATE INDEX "message_search_queue_enqueued_idx" ON "message_search_queue" USING btree ("enqueued_at");--> statement-breakpoint
-- Every message, however it is inserted (ingest, replies, forwards, auto-replies), is queued
-- for the search indexer (src/engine/search.ts). One statement-level trigger per INSERT
-- statement, so a batch of messages costs one trigger call.
CREATE FUNCTION switchboard_message_search_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO message_search_queue (message_id, tenant_id) SELECT id, tenant_id FROM new_messages;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER message_search_enqueue AFTER INSERT ON "message" REFERENCING NEW TABLE AS new_messages
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_message_search_enqueue();--> statement-breakpoint
-- The messages stored before this migration are indexed by the same indexer, in the background.
INSERT INTO message_search_queue (message_id, tenant_id) SELECT id, tenant_id FROM "message";

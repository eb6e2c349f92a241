-- Ingest writes a new conversation, its raw message, the message and its attachments in one
-- pipelined round trip; the order the driver sends them in is not something to rely on, so
-- the references among them are checked at commit instead of per statement.
ALTER TABLE "message" ALTER CONSTRAINT "message_conversation_id_conversation_id_fk" DEFERRABLE INITIALLY DEFERRED;--> statement-breakpoint
ALTER TABLE "message" ALTER CONSTRAINT "message_raw_message_id_raw_message_id_fk" DEFERRABLE INITIALLY DEFERRED;--> statement-breakpoint
ALTER TABLE "attachment" ALTER CONSTRAINT "attachment_message_id_message_id_fk" DEFERRABLE INITIALLY DEFERRED;

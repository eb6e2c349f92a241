CREATE INDEX "conversation_open_assignee_idx" ON "conversation" USING btree ("assignee_id") WHERE work_state IN ('ACTIVE', 'PARKED', 'OFFERED');--> statement-breakpoint
CREATE INDEX "conversation_open_offered_to_idx" ON "conversation" USING btree ("offered_to_id") WHERE work_state IN ('ACTIVE', 'PARKED', 'OFFERED');--> statement-breakpoint
CREATE INDEX "conversation_queue_open_idx" ON "conversation" USING btree ("queue_id") WHERE work_state <> 'DONE';--> statement-breakpoint
CREATE INDEX "conversation_offer_expiry_idx" ON "conversation" USING btree ("offer_expires_at") WHERE work_state = 'OFFERED';--> statement-breakpoint
CREATE INDEX "message_raw_message_idx" ON "message" USING btree ("raw_message_id") WHERE raw_message_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "rejected_message_raw_message_idx" ON "rejected_message" USING btree ("raw_message_id") WHERE raw_message_id IS NOT NULL;
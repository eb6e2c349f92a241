DROP INDEX "message_search_document_idx";--> statement-breakpoint
CREATE INDEX "message_search_document_idx" ON "message_search" USING gin ("tenant_id","document");
-- Subject substring search (the conversation list's text filter, src/engine/conversations.ts)
-- by trigrams instead of reading every conversation of the tenant. Both extensions ship with
-- PostgreSQL (contrib) and are trusted: the database owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
CREATE EXTENSION IF NOT EXISTS btree_gin;--> statement-breakpoint
CREATE INDEX "conversation_subject_trgm_idx" ON "conversation" USING gin ("tenant_id","subject" gin_trgm_ops);

ALTER TABLE "tenant" DROP COLUMN "next_ticket_number";--> statement-breakpoint
-- Ticket numbers come from one sequence: unique per tenant by construction, and no row
-- lock on the tenant serialising every ingest transaction (a per-tenant counter would).
CREATE SEQUENCE IF NOT EXISTS "ticket_number_seq" START WITH 100001;

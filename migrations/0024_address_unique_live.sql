DROP INDEX "email_address_address_uq";--> statement-breakpoint
CREATE UNIQUE INDEX "email_address_address_uq" ON "email_address" USING btree (lower("address")) WHERE archived_at IS NULL;
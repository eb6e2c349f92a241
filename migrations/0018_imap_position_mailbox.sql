DROP INDEX "message_imap_uid_uq";--> statement-breakpoint
DROP INDEX "rejected_message_imap_uid_uq";--> statement-breakpoint
ALTER TABLE "message" ADD COLUMN "imap_mailbox" text;--> statement-breakpoint
ALTER TABLE "rejected_message" ADD COLUMN "imap_mailbox" text;--> statement-breakpoint
-- Hand-written backfill (docs/ingest.md "Checkpoint and crash semantics", 2026-11-23): the
-- IMAP position becomes (account, folder, UIDVALIDITY, UID). A stored row with a UID gets
-- the folder of the account's only checkpoint with the row's UIDVALIDITY, else the
-- account's current `imap_mailbox`. Rows of an account that was already switched between
-- folders sharing a UIDVALIDITY cannot be told apart: they all get the current folder
-- (and the other folder's mail that was taken for theirs is not in the table to label).
-- Rows whose account is gone (account_id NULL) keep a NULL folder: they match nothing.
UPDATE "message" m SET "imap_mailbox" = coalesce(
    (SELECT min(c."mailbox") FROM "mailbox_checkpoint" c
      WHERE c."account_id" = m."account_id" AND c."uid_validity" = m."uid_validity"
     HAVING count(*) = 1),
    (SELECT a."imap_mailbox" FROM "mail_account" a WHERE a."id" = m."account_id"))
  WHERE m."uid" IS NOT NULL AND m."account_id" IS NOT NULL;--> statement-breakpoint
UPDATE "rejected_message" r SET "imap_mailbox" = coalesce(
    (SELECT min(c."mailbox") FROM "mailbox_checkpoint" c
      WHERE c."account_id" = r."account_id" AND c."uid_validity" = r."uid_validity"
     HAVING count(*) = 1),
    (SELECT a."imap_mailbox" FROM "mail_account" a WHERE a."id" = r."account_id"))
  WHERE r."uid" IS NOT NULL AND r."account_id" IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "message_imap_uid_uq" ON "message" USING btree ("account_id","imap_mailbox","uid_validity","uid") WHERE uid IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "rejected_message_imap_uid_uq" ON "rejected_message" USING btree ("account_id","imap_mailbox","uid_validity","uid") WHERE uid IS NOT NULL;

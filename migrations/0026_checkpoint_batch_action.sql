ALTER TABLE "mailbox_checkpoint" ADD COLUMN "batch_first_uid" bigint;--> statement-breakpoint
ALTER TABLE "mailbox_checkpoint" ADD COLUMN "batch_action" text;--> statement-breakpoint
-- Hand-written backfill (docs/ingest.md "Checkpoint and crash semantics", 2026-11-23): the
-- repair of a lost server action covers only the last committed batch, under the action it
-- was committed with. Which batch that was is not known for mail ingested before this
-- migration: the last 50 UIDs up to the checkpoint (one batch at the default
-- IMAP_BATCH_SIZE) are taken for it, under the account's action now. That is what the
-- repair before this migration did for SEEN; for MOVE it moved everything up to the
-- checkpoint still in the folder, and after any earlier session under MOVE only a crash
-- leftover can still be there. An account on LEAVE now records LEAVE: switched to SEEN or
-- MOVE later, nothing ingested before the switch is touched.
UPDATE "mailbox_checkpoint" c
   SET "batch_first_uid" = greatest(1, c."last_uid" - 49),
       "batch_action" = a."imap_after_process"
  FROM "mail_account" a
 WHERE a."id" = c."account_id" AND c."last_uid" > 0;

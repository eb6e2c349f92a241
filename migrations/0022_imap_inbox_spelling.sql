-- Hand-written (docs/ingest.md "Checkpoint and crash semantics", 2026-11-23): INBOX is
-- case-insensitive (RFC 3501 §5.1), so an account set to read "inbox" or "Inbox" reads the
-- mailbox "INBOX". Its spelling is part of the checkpoint's and the IMAP position's key,
-- and a change of spelling alone read the whole mailbox again. Accounts now store it as
-- "INBOX"; an account stored with another spelling takes "INBOX", and with it its
-- checkpoint (replacing one left from an earlier "INBOX" spelling, which is older) and the
-- positions of its stored and rejected rows (where that does not repeat a position already
-- stored as "INBOX").
DELETE FROM "mailbox_checkpoint" c USING "mail_account" a
  WHERE c."account_id" = a."id" AND upper(a."imap_mailbox") = 'INBOX' AND a."imap_mailbox" <> 'INBOX'
    AND c."mailbox" = 'INBOX';--> statement-breakpoint
UPDATE "mailbox_checkpoint" c SET "mailbox" = 'INBOX' FROM "mail_account" a
  WHERE c."account_id" = a."id" AND upper(a."imap_mailbox") = 'INBOX' AND a."imap_mailbox" <> 'INBOX'
    AND c."mailbox" = a."imap_mailbox";--> statement-breakpoint
UPDATE "message" m SET "imap_mailbox" = 'INBOX' FROM "mail_account" a
  WHERE m."account_id" = a."id" AND upper(a."imap_mailbox") = 'INBOX' AND a."imap_mailbox" <> 'INBOX'
    AND m."imap_mailbox" = a."imap_mailbox" AND m."uid" IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM "message" x
                     WHERE x."account_id" = m."account_id" AND x."imap_mailbox" = 'INBOX'
                       AND x."uid_validity" = m."uid_validity" AND x."uid" = m."uid");--> statement-breakpoint
UPDATE "rejected_message" r SET "imap_mailbox" = 'INBOX' FROM "mail_account" a
  WHERE r."account_id" = a."id" AND upper(a."imap_mailbox") = 'INBOX' AND a."imap_mailbox" <> 'INBOX'
    AND r."imap_mailbox" = a."imap_mailbox" AND r."uid" IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM "rejected_message" x
                     WHERE x."account_id" = r."account_id" AND x."imap_mailbox" = 'INBOX'
                       AND x."uid_validity" = r."uid_validity" AND x."uid" = r."uid");--> statement-breakpoint
UPDATE "mail_account" SET "imap_mailbox" = 'INBOX'
  WHERE upper("imap_mailbox") = 'INBOX' AND "imap_mailbox" <> 'INBOX';

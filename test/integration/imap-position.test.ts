/**
 * The IMAP position of a mail is (account, folder, UIDVALIDITY, UID). RFC 3501 lets two
 * folders share a UIDVALIDITY (Dovecot takes the second the folder was created; some
 * servers use one value for all), so an account switched from one folder to another with
 * the same UIDVALIDITY met UIDs 1..n it had already stored — and until 2026-11-23 took the
 * new folder's mail for duplicates: lost, with the folder's checkpoint moved past it.
 */
import { readFileSync } from "node:fs";
import { and, eq, isNotNull, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { rawClient } from "../../src/db/client.js";
import { MIGRATIONS_DIR } from "../../src/db/migrate.js";
import {
  emailAddress,
  mailAccount,
  mailboxCheckpoint,
  message,
  rejectedMessage,
} from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { ingestMessage } from "../../src/engine/ingest/ingest.js";
import type { TestApp } from "../helpers/app.js";
import { createTestDatabase } from "../helpers/db.js";
import { type DovecotInstance, requireDovecot } from "../helpers/dovecot.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { appendMany, customerMail, newDovecotMailbox, serverState, withDovecotApp } from "./imap-fixtures.js";

const enabled = requireDovecot();

let t: TestApp;
let dovecot: DovecotInstance;

/** Mail a spam filter flagged and that has no Message-ID: only its IMAP position can tell a re-fetch. */
const spamWithoutId = (to: string, subject: string) =>
  buildRawMail({ to, subject, messageId: null, headers: { "X-Spam-Flag": "YES" } });

/** What the account stored, as "folder uid subject" (stored) and "folder uid" (rejected). */
async function positions(accountId: string) {
  const stored = await t.db.db
    .select({ box: message.imapMailbox, uv: message.uidValidity, uid: message.uid, subject: message.subject })
    .from(message)
    .where(eq(message.accountId, accountId));
  const rejected = await t.db.db
    .select({ box: rejectedMessage.imapMailbox, uv: rejectedMessage.uidValidity, uid: rejectedMessage.uid })
    .from(rejectedMessage)
    .where(eq(rejectedMessage.accountId, accountId));
  const sort = (a: string, b: string) => a.localeCompare(b);
  return {
    uidValidities: new Set([...stored, ...rejected].map((r) => r.uv)),
    stored: stored.map((r) => `${r.box} ${r.uid} ${r.subject}`).sort(sort),
    rejected: rejected.map((r) => `${r.box} ${r.uid}`).sort(sort),
  };
}

describe.skipIf(!enabled)("IMAP position: (account, folder, UIDVALIDITY, UID) (real Dovecot)", () => {
  withDovecotApp((started) => ({ t, dovecot } = started));

  it("an account switched between two folders with the same UIDVALIDITY, and back, with new mail in each meanwhile: every mail stored once, nothing lost", async () => {
    const s = await newDovecotMailbox(t, dovecot, "pos");
    const [A, B] = [s.mailbox, `${s.mailbox}B`];
    await t.db.db.update(emailAddress).set({ spamRouting: "DROP" }).where(eq(emailAddress.id, s.addressId));
    const mail = (box: string, n: number) =>
      customerMail(s.address, `${box}-${n}@customer.example`, `${box}-${n}`);
    const poll = async (box: string) => {
      await t.db.db.update(mailAccount).set({ imapMailbox: box }).where(eq(mailAccount.id, s.accountId));
      expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
    };

    // A: UIDs 1-3 (the third dropped spam without a Message-ID: a rejected record).
    await appendMany(dovecot, [mail(A, 1), mail(A, 2), spamWithoutId(s.address, `${A}-spam`)], A);
    // B: UIDs 1-4 under A's UIDVALIDITY (the spam at the same UID as A's).
    await appendMany(dovecot, [mail(B, 1), mail(B, 2), spamWithoutId(s.address, `${B}-spam`), mail(B, 4)], B);
    const uv = await dovecot.uidValidity(A);
    await dovecot.setUidValidity(B, uv);
    expect(await dovecot.uidValidity(B)).toBe(uv);

    await poll(A);
    await poll(B);
    // New mail in both while the account reads B: B's is fetched by B's next sync.
    await appendMany(dovecot, [mail(B, 5)], B);
    await appendMany(dovecot, [mail(A, 4)], A);
    await poll(B);
    // Back to A: what came meanwhile, and what comes after (A's UIDs 4-6 are B's 4-5 too).
    await poll(A);
    await appendMany(dovecot, [mail(A, 5), mail(A, 6)], A);
    await poll(A);
    // And to B once more.
    await appendMany(dovecot, [mail(B, 6)], B);
    await poll(B);

    const got = await positions(s.accountId);
    expect(got.uidValidities).toEqual(new Set([uv]));
    expect(got.stored).toEqual(
      [
        `${A} 1 ${A}-1`,
        `${A} 2 ${A}-2`,
        `${A} 4 ${A}-4`,
        `${A} 5 ${A}-5`,
        `${A} 6 ${A}-6`,
        `${B} 1 ${B}-1`,
        `${B} 2 ${B}-2`,
        `${B} 4 ${B}-4`,
        `${B} 5 ${B}-5`,
        `${B} 6 ${B}-6`,
      ].sort((a, b) => a.localeCompare(b)),
    );
    expect(got.rejected).toEqual([`${A} 3`, `${B} 3`]);
    const cps = await t.db.db
      .select({
        mailbox: mailboxCheckpoint.mailbox,
        uv: mailboxCheckpoint.uidValidity,
        last: mailboxCheckpoint.lastUid,
      })
      .from(mailboxCheckpoint)
      .where(eq(mailboxCheckpoint.accountId, s.accountId));
    expect(cps.sort((a, b) => a.mailbox.localeCompare(b.mailbox))).toEqual([
      { mailbox: A, uv, last: 6 },
      { mailbox: B, uv, last: 6 },
    ]);
    // The server action ran in both folders.
    expect((await serverState(dovecot, A)).every((m) => m.seen)).toBe(true);
    expect((await serverState(dovecot, B)).every((m) => m.seen)).toBe(true);

    // A re-fetch of committed mail (the checkpoints gone) is still a no-op in each folder —
    // also for the spam records, which nothing but their position can recognise.
    await t.db.db.delete(mailboxCheckpoint).where(eq(mailboxCheckpoint.accountId, s.accountId));
    await poll(A);
    await poll(B);
    const again = await positions(s.accountId);
    expect(again.stored).toEqual(got.stored);
    expect(again.rejected).toEqual(got.rejected);
  });

  // A worker that lost its lock and commits an earlier batch late must not widen the range
  // the next session's repair re-applies the server action to (re-probe, session 17).
  it("a late commit of an earlier batch leaves the last batch's range at the checkpoint", async () => {
    const s = await newDovecotMailbox(t, dovecot, "latebatch");
    const engine = t.app.engine;
    const at = async (uid: number, firstUid: number) =>
      ingestMessage(engine, {
        tenantId: t.tenantId,
        addressId: s.addressId,
        raw: customerMail(s.address, `late-${uid}@customer.example`, `Late ${uid}`),
        parsed: await engine.mime.parse(
          customerMail(s.address, `late-${uid}@customer.example`, `Late ${uid}`),
        ),
        receivedAt: new Date(),
        source: {
          kind: "imap",
          accountId: s.accountId,
          mailbox: "INBOX",
          uidValidity: 7,
          uid,
          batch: { firstUid, action: "SEEN" },
        },
      });
    expect((await at(60, 51)).status).toBe("stored");
    expect((await at(20, 1)).status).toBe("stored");
    // A late re-fetch of the checkpoint's own UID, in a batch that began lower.
    expect((await at(60, 41)).status).toBe("duplicate");
    const [cp] = await t.db.db
      .select()
      .from(mailboxCheckpoint)
      .where(eq(mailboxCheckpoint.accountId, s.accountId));
    expect(cp).toMatchObject({ lastUid: 60, batchFirstUid: 51, batchAction: "SEEN" });
  });

  it("ingest: the same position is a duplicate (stored and rejected mail), the same UIDs in another folder are not", async () => {
    const s = await newDovecotMailbox(t, dovecot, "eng");
    const engine = t.app.engine;
    const at = async (raw: Buffer | null, mailbox: string, uid: number) =>
      ingestMessage(engine, {
        tenantId: t.tenantId,
        addressId: s.addressId,
        raw: raw ?? Buffer.from(`unparseable ${mailbox} ${uid}`),
        // null: mail the parser refused, with no Message-ID to recognise it by.
        parsed: raw
          ? await engine.mime.parse(raw)
          : { ok: false, reason: "unparseable", detail: "test", sizeBytes: 20 },
        receivedAt: new Date(),
        source: { kind: "imap", accountId: s.accountId, mailbox, uidValidity: 7, uid },
      });
    const one = customerMail(s.address, "eng-1@customer.example", "One");
    const two = customerMail(s.address, "eng-2@customer.example", "Two");

    const first = await at(one, "INBOX", 1);
    expect(first.status).toBe("stored");
    // Another mail at the same position: a re-fetch, whatever its bytes.
    expect(await at(two, "INBOX", 1)).toEqual({
      status: "duplicate",
      messageId: first.status === "stored" ? first.messageId : "",
    });
    // The same UID and UIDVALIDITY in another folder: a mail of its own.
    expect((await at(two, "Archive", 1)).status).toBe("stored");

    expect((await at(null, "INBOX", 2)).status).toBe("rejected");
    expect((await at(null, "INBOX", 2)).status).toBe("duplicate");
    expect((await at(null, "Archive", 2)).status).toBe("rejected");

    const rows = await t.db.db
      .select({ box: message.imapMailbox, uid: message.uid })
      .from(message)
      .where(and(eq(message.accountId, s.accountId), isNotNull(message.uid)));
    expect(rows.map((r) => `${r.box} ${r.uid}`).sort()).toEqual(["Archive 1", "INBOX 1"]);
    const rej = await t.db.db
      .select({ box: rejectedMessage.imapMailbox, uid: rejectedMessage.uid })
      .from(rejectedMessage)
      .where(eq(rejectedMessage.accountId, s.accountId));
    expect(rej.map((r) => `${r.box} ${r.uid}`).sort()).toEqual(["Archive 2", "INBOX 2"]);

    // The unique indexes hold the same key: a second row at one position is refused.
    const [m] = await t.db.db.select().from(message).where(eq(message.imapMailbox, "Archive"));
    const copy = sql`INSERT INTO message (tenant_id, conversation_id, direction, received_at, account_id, imap_mailbox, uid_validity, uid)
      VALUES (${m!.tenantId}, ${m!.conversationId}, 'INBOUND', now(), ${s.accountId}, 'Archive', 7, 1)`;
    await expect(t.db.db.execute(copy)).rejects.toMatchObject({ cause: { code: "23505" } });
  });
});

// Migration 0018 labels the rows stored before it with their folder. Its two UPDATEs are
// re-run here over rows shaped like the ones ingest wrote then (no folder).
describe("migration 0018: the folder of rows stored before it", () => {
  it("takes the folder of the account's only checkpoint with the row's UIDVALIDITY, else the account's current folder", async () => {
    const db = await createTestDatabase({ max: 2 });
    try {
      const sql = rawClient(db.db);
      const { tenantId } = await createTenantWithAdmin(db.db, {
        tenantName: "Backfill",
        adminEmail: "a@bf.test",
      });
      const [c] = await sql<{ id: string }[]>`
        INSERT INTO contact (tenant_id, email) VALUES (${tenantId}, 'c@customer.example') RETURNING id`;
      const [conv] = await sql<{ id: string }[]>`
        INSERT INTO conversation (tenant_id, ticket_number, contact_id, received_at, last_activity_at, status_changed_at)
        VALUES (${tenantId}, 1, ${c!.id}, now(), now(), now()) RETURNING id`;
      // An account's current folder and its checkpoints (folder, UIDVALIDITY).
      const account = async (current: string, checkpoints: [string, number][]) => {
        const [a] = await sql<{ id: string }[]>`
          INSERT INTO mail_account (tenant_id, name, imap_mailbox) VALUES (${tenantId}, ${current}, ${current}) RETURNING id`;
        for (const [box, uv] of checkpoints) {
          await sql`INSERT INTO mailbox_checkpoint (tenant_id, account_id, mailbox, uid_validity, last_uid)
            VALUES (${tenantId}, ${a!.id}, ${box}, ${uv}, 10)`;
        }
        return a!.id;
      };
      const never = await account("INBOX", []);
      const once = await account("INBOX", [["INBOX", 5]]);
      // Switched from Old (UIDVALIDITY 1) to New (2); rows of 9 are from before a resync.
      const moved = await account("New", [
        ["Old", 1],
        ["New", 2],
      ]);
      // Switched between two folders of one UIDVALIDITY: nothing tells their rows apart.
      const same = await account("B", [
        ["A", 3],
        ["B", 3],
      ]);
      const rows: [string | null, number | null, number | null][] = [
        [never, 4, 1],
        [once, 5, 1],
        [moved, 1, 1],
        [moved, 2, 1],
        [moved, 9, 2],
        [same, 3, 1],
        [same, 3, 2],
        [null, 5, 3],
        [once, null, null],
      ];
      for (const [accountId, uv, uid] of rows) {
        await sql`INSERT INTO message (tenant_id, conversation_id, direction, received_at, account_id, uid_validity, uid)
          VALUES (${tenantId}, ${conv!.id}, 'INBOUND', now(), ${accountId}, ${uv}, ${uid})`;
        await sql`INSERT INTO rejected_message (tenant_id, reason, size_bytes, received_at, account_id, uid_validity, uid)
          VALUES (${tenantId}, 'unparseable', 1, now(), ${accountId}, ${uv}, ${uid})`;
      }
      const statements = readFileSync(`${MIGRATIONS_DIR}/0018_imap_position_mailbox.sql`, "utf8")
        .split("--> statement-breakpoint")
        .filter((st) => /^\s*(--[^\n]*\n\s*)*UPDATE/.test(st));
      expect(statements).toHaveLength(2);
      for (const st of statements) await sql.unsafe(st);
      const name = new Map([
        [never, "never"],
        [once, "once"],
        [moved, "moved"],
        [same, "same"],
      ]);
      const expected = [
        "never 4 1 INBOX",
        "null 5 3 null",
        "moved 1 1 Old",
        "moved 2 1 New",
        "moved 9 2 New",
        "once 5 1 INBOX",
        "once null null null",
        "same 3 1 B",
        "same 3 2 B",
      ];
      for (const table of ["message", "rejected_message"]) {
        const got = await sql.unsafe<
          {
            account_id: string | null;
            uid_validity: string | null;
            uid: string | null;
            imap_mailbox: string | null;
          }[]
        >(`SELECT account_id, uid_validity::text, uid::text, imap_mailbox FROM ${table}`);
        const labels = got.map(
          (r) =>
            `${r.account_id ? name.get(r.account_id) : null} ${r.uid_validity} ${r.uid} ${r.imap_mailbox}`,
        );
        expect(labels.sort(), table).toEqual(expected.sort());
      }
    } finally {
      await db.drop();
    }
  });
});

describe("migration 0022: INBOX in another spelling", () => {
  it("gives the account, its checkpoint and its rows' positions the name INBOX, and leaves other names alone", async () => {
    const db = await createTestDatabase({ max: 2 });
    try {
      const sql = rawClient(db.db);
      const { tenantId } = await createTenantWithAdmin(db.db, {
        tenantName: "Spelling",
        adminEmail: "a@sp.test",
      });
      const [c] = await sql<{ id: string }[]>`
        INSERT INTO contact (tenant_id, email) VALUES (${tenantId}, 'c@customer.example') RETURNING id`;
      const [conv] = await sql<{ id: string }[]>`
        INSERT INTO conversation (tenant_id, ticket_number, contact_id, received_at, last_activity_at, status_changed_at)
        VALUES (${tenantId}, 1, ${c!.id}, now(), now(), now()) RETURNING id`;
      const account = async (current: string, checkpoints: [string, number][], uids: [string, number][]) => {
        const [a] = await sql<{ id: string }[]>`
          INSERT INTO mail_account (tenant_id, name, imap_mailbox) VALUES (${tenantId}, ${current}, ${current}) RETURNING id`;
        for (const [box, last] of checkpoints) {
          await sql`INSERT INTO mailbox_checkpoint (tenant_id, account_id, mailbox, uid_validity, last_uid)
            VALUES (${tenantId}, ${a!.id}, ${box}, 7, ${last})`;
        }
        for (const [box, uid] of uids) {
          await sql`INSERT INTO message (tenant_id, conversation_id, direction, received_at, account_id, imap_mailbox, uid_validity, uid)
            VALUES (${tenantId}, ${conv!.id}, 'INBOUND', now(), ${a!.id}, ${box}, 7, ${uid})`;
          await sql`INSERT INTO rejected_message (tenant_id, reason, size_bytes, received_at, account_id, imap_mailbox, uid_validity, uid)
            VALUES (${tenantId}, 'unparseable', 1, now(), ${a!.id}, ${box}, 7, ${uid})`;
        }
        return a!.id;
      };
      // Read as "inbox" since it was made.
      const lower = await account(
        "inbox",
        [["inbox", 20]],
        [
          ["inbox", 1],
          ["inbox", 2],
        ],
      );
      // Read as "INBOX" up to UID 10, then as "Inbox" (which read the mailbox again: UID 1
      // is in the table under both names).
      const switched = await account(
        "Inbox",
        [
          ["INBOX", 10],
          ["Inbox", 30],
        ],
        [
          ["INBOX", 1],
          ["Inbox", 1],
          ["Inbox", 25],
        ],
      );
      const other = await account("support", [["support", 5]], [["support", 1]]);
      const statements = readFileSync(`${MIGRATIONS_DIR}/0022_imap_inbox_spelling.sql`, "utf8")
        .split("--> statement-breakpoint")
        .filter((st) => /^\s*(--[^\n]*\n\s*)*(UPDATE|DELETE)/.test(st));
      expect(statements).toHaveLength(5);
      for (const st of statements) await sql.unsafe(st);
      const name = new Map([
        [lower, "lower"],
        [switched, "switched"],
        [other, "other"],
      ]);
      const accounts = await sql<{ id: string; imap_mailbox: string }[]>`
        SELECT id, imap_mailbox FROM mail_account WHERE tenant_id = ${tenantId}`;
      expect(accounts.map((a) => `${name.get(a.id)} ${a.imap_mailbox}`).sort()).toEqual([
        "lower INBOX",
        "other support",
        "switched INBOX",
      ]);
      const checkpoints = await sql<{ account_id: string; mailbox: string; last_uid: string }[]>`
        SELECT account_id, mailbox, last_uid::text FROM mailbox_checkpoint WHERE tenant_id = ${tenantId}`;
      expect(checkpoints.map((r) => `${name.get(r.account_id)} ${r.mailbox} ${r.last_uid}`).sort()).toEqual([
        "lower INBOX 20",
        "other support 5",
        "switched INBOX 30",
      ]);
      for (const table of ["message", "rejected_message"]) {
        const rows = await sql.unsafe<{ account_id: string; imap_mailbox: string; uid: string }[]>(
          `SELECT account_id, imap_mailbox, uid::text FROM ${table} WHERE tenant_id = $1`,
          [tenantId],
        );
        expect(rows.map((r) => `${name.get(r.account_id)} ${r.imap_mailbox} ${r.uid}`).sort(), table).toEqual(
          [
            "lower INBOX 1",
            "lower INBOX 2",
            "other support 1",
            "switched INBOX 1",
            "switched INBOX 25",
            // The copy read again under the other spelling: its position is already taken.
            "switched Inbox 1",
          ],
        );
      }
    } finally {
      await db.drop();
    }
  });
});

// Migration 0026 records the last committed batch with the checkpoint. For checkpoints
// written before it, its UPDATE takes the last 50 UIDs under the account's action then.
describe("migration 0026: the last batch of checkpoints written before it", () => {
  it("is the last 50 UIDs up to the checkpoint, under the account's action now; an empty checkpoint records none", async () => {
    const db = await createTestDatabase({ max: 2 });
    try {
      const sql = rawClient(db.db);
      const { tenantId } = await createTenantWithAdmin(db.db, {
        tenantName: "Batch",
        adminEmail: "a@ba.test",
      });
      const account = async (action: string, lastUid: number) => {
        const [a] = await sql<{ id: string }[]>`
          INSERT INTO mail_account (tenant_id, name, imap_after_process)
          VALUES (${tenantId}, ${`${action} ${lastUid}`}, ${action}) RETURNING id`;
        await sql`INSERT INTO mailbox_checkpoint (tenant_id, account_id, mailbox, uid_validity, last_uid)
          VALUES (${tenantId}, ${a!.id}, 'INBOX', 7, ${lastUid})`;
      };
      await account("LEAVE", 1200);
      await account("MOVE", 120);
      await account("SEEN", 12);
      await account("SEEN", 0);
      const statements = readFileSync(`${MIGRATIONS_DIR}/0026_checkpoint_batch_action.sql`, "utf8")
        .split("--> statement-breakpoint")
        .filter((st) => /^\s*(--[^\n]*\n\s*)*UPDATE/.test(st));
      expect(statements).toHaveLength(1);
      await sql.unsafe(statements[0]!);
      const got = await sql<{ name: string; first: string | null; action: string | null }[]>`
        SELECT a.name, c.batch_first_uid::text AS first, c.batch_action AS action
          FROM mailbox_checkpoint c JOIN mail_account a ON a.id = c.account_id ORDER BY a.name`;
      expect(got.map((r) => `${r.name}: ${r.first} ${r.action}`)).toEqual([
        "LEAVE 1200: 1151 LEAVE",
        "MOVE 120: 71 MOVE",
        "SEEN 0: null null",
        "SEEN 12: 1 SEEN",
      ]);
    } finally {
      await db.drop();
    }
  });
});

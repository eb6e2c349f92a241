import { and, count, eq, notInArray } from "drizzle-orm";
import { ImapFlow } from "imapflow";
import { describe, expect, it } from "vitest";
import { createImapConnector, defaultImapSettings, type ImapConnector } from "../../src/connectors/imap.js";
import { checkImap } from "../../src/connectors/imap-check.js";
import { ImapConnectorError } from "../../src/connectors/imap-errors.js";
import {
  conversation,
  emailAddress,
  mailAccount,
  rejectedMessage,
  tenant,
} from "../../src/db/schema/index.js";
import { silentLogger } from "../../src/engine/context.js";
import { purgeExpired } from "../../src/engine/retention.js";
import { encodeId } from "../../src/schema/ids.js";
import type { TestApp } from "../helpers/app.js";
import { refuseMessageInserts } from "../helpers/db.js";
import { type DovecotInstance, requireDovecot } from "../helpers/dovecot.js";
import {
  appendMany,
  checkpointOf as checkpointOfAccount,
  customerMail,
  messagesOf as messagesOfAccount,
  newDovecotMailbox,
  serverState,
  waitFor,
  withDovecotApp,
} from "./imap-fixtures.js";

const enabled = requireDovecot();

let t: TestApp;
let dovecot: DovecotInstance;

const setup = (opts: Parameters<typeof newDovecotMailbox>[3] = {}) =>
  newDovecotMailbox(t, dovecot, "box", opts);
const messagesOf = (accountId: string) => messagesOfAccount(t.db.db, accountId);

const checkpointOf = (accountId: string) => checkpointOfAccount(t.db.db, accountId);

/** Takes \Seen off a message on the server: what a crash between commit and flagging leaves. */
async function unflagSeen(mailbox: string, uid: number) {
  const c = dovecot.client();
  await c.connect();
  await c.mailboxOpen(mailbox);
  await c.messageFlagsRemove(String(uid), ["\\Seen"], { uid: true });
  await c.logout();
}

describe.skipIf(!enabled)("IMAP connector (real Dovecot)", () => {
  withDovecotApp((started) => ({ t, dovecot } = started));

  it("poll: ingests what arrived while nobody listened, commits the checkpoint with it, then sets \\Seen", async () => {
    const s = await setup();
    const a = await dovecot.appendMessage(
      customerMail(s.address, "poll-1@customer.example", "Printer"),
      s.mailbox,
    );
    const b = await dovecot.appendMessage(
      customerMail(s.address, "poll-2@customer.example", "Invoice"),
      s.mailbox,
    );
    expect((await serverState(dovecot, s.mailbox)).every((m) => !m.seen)).toBe(true);

    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");

    const msgs = await messagesOf(s.accountId);
    expect(msgs.map((m) => [m.messageIdHeader, m.uid, m.uidValidity])).toEqual([
      ["poll-1@customer.example", a.uid, a.uidValidity],
      ["poll-2@customer.example", b.uid, b.uidValidity],
    ]);
    const convs = await t.db.db.select().from(conversation).where(eq(conversation.queueId, s.queueId));
    expect(convs.map((c) => c.subject).sort()).toEqual(["Invoice", "Printer"]);
    expect(await checkpointOf(s.accountId)).toMatchObject({ uidValidity: b.uidValidity, lastUid: b.uid });
    expect(await serverState(dovecot, s.mailbox)).toEqual([
      { uid: a.uid, seen: true },
      { uid: b.uid, seen: true },
    ]);
    const [acc] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
    expect(acc?.status).toBe("VALID");
  });

  it("a batch is one transaction: a reply threads onto a mail of the same batch, a copy is a duplicate; a failing message fails alone", async () => {
    const s = await setup();
    const first = customerMail(s.address, "batch-1@customer.example", "Batch");
    await appendMany(
      dovecot,
      [
        first,
        customerMail(s.address, "batch-2@customer.example", "Batch", "batch-1@customer.example"),
        first,
        customerMail(s.address, "batch-poison@customer.example", "Poison"),
        customerMail(s.address, "batch-4@customer.example", "After"),
      ],
      s.mailbox,
    );
    // A message the database refuses with a plain error: not the message's fault as far as
    // ingest can tell, so it is retried, not quarantined.
    const removeTrap = await refuseMessageInserts(t.db.db, { Poison: "P0001" });
    try {
      await t.app.imap.pollAccount(s.accountId).catch(() => "failed");
      // The batch rolled back as a whole, then went message by message up to the bad one.
      const msgs = await messagesOf(s.accountId);
      expect(msgs.map((m) => m.messageIdHeader)).toEqual([
        "batch-1@customer.example",
        "batch-2@customer.example",
      ]);
      expect(new Set(msgs.map((m) => m.conversationId)).size).toBe(1);
      expect((await checkpointOf(s.accountId))?.lastUid).toBe(msgs[1]!.uid! + 1); // the copy counted as done
    } finally {
      await removeTrap();
    }
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
    const msgs = await messagesOf(s.accountId);
    expect(msgs.map((m) => m.messageIdHeader)).toEqual([
      "batch-1@customer.example",
      "batch-2@customer.example",
      "batch-poison@customer.example",
      "batch-4@customer.example",
    ]);
    const convs = await t.db.db.select().from(conversation).where(eq(conversation.queueId, s.queueId));
    expect(convs.map((c) => c.subject).sort()).toEqual(["After", "Batch", "Poison"]);
  });

  it("a message the database can never store is quarantined (ingest_failed) and the mailbox moves on", async () => {
    const s = await setup();
    await appendMany(
      dovecot,
      [
        customerMail(s.address, "q-1@customer.example", "Fine"),
        customerMail(s.address, "q-2@customer.example", "Unstorable"),
        customerMail(s.address, "q-3@customer.example", "Also fine"),
      ],
      s.mailbox,
    );
    const removeTrap = await refuseMessageInserts(t.db.db, { Unstorable: "54000" });
    try {
      expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
    } finally {
      await removeTrap();
    }
    expect((await messagesOf(s.accountId)).map((m) => m.messageIdHeader)).toEqual([
      "q-1@customer.example",
      "q-3@customer.example",
    ]);
    const rejected = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.accountId, s.accountId));
    expect(rejected).toMatchObject([{ reason: "ingest_failed" }]);
    expect(rejected[0]!.rawMessageId).not.toBeNull();
    const all = await serverState(dovecot, s.mailbox);
    expect(await checkpointOf(s.accountId)).toMatchObject({ lastUid: all.at(-1)!.uid });
    expect(all.every((m) => m.seen)).toBe(true);
  });

  it("never reads \\Seen as state: a message read by a human before we fetched it is still ingested", async () => {
    const s = await setup({ afterProcess: "LEAVE" });
    const a = await dovecot.appendMessage(
      customerMail(s.address, "seen-1@customer.example", "Read"),
      s.mailbox,
    );
    const c = dovecot.client();
    await c.connect();
    await c.mailboxOpen(s.mailbox);
    await c.messageFlagsAdd(String(a.uid), ["\\Seen"], { uid: true });
    await c.logout();

    await t.app.imap.pollAccount(s.accountId);
    expect((await messagesOf(s.accountId)).map((m) => m.uid)).toEqual([a.uid]);
    // LEAVE: nothing changed on the server, and a second poll stores nothing new.
    await t.app.imap.pollAccount(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(1);
    expect(await checkpointOf(s.accountId)).toMatchObject({ lastUid: a.uid });
  });

  it("MOVE: committed mail is moved to the configured folder (created when missing)", async () => {
    const done = `Done${Date.now()}`;
    const s = await setup({ afterProcess: "MOVE", moveTo: done });
    // The first APPEND creates the mailbox; appendMany needs it to exist.
    await dovecot.appendMessage(customerMail(s.address, "move-1@customer.example", "Move 1"), s.mailbox);
    await appendMany(
      dovecot,
      [2, 3].map((i) => customerMail(s.address, `move-${i}@customer.example`, `Move ${i}`)),
      s.mailbox,
    );
    await t.app.imap.pollAccount(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(3);
    expect(await serverState(dovecot, s.mailbox)).toEqual([]);
    expect(await serverState(dovecot, done)).toHaveLength(3);
  });

  it("a server action lost in a crash (committed, not flagged) is re-applied by the next session", async () => {
    const s = await setup();
    const a = await dovecot.appendMessage(
      customerMail(s.address, "lost-1@customer.example", "Lost"),
      s.mailbox,
    );
    await t.app.imap.pollAccount(s.accountId);
    // What a crash right after the commit looks like on the server: no \Seen.
    await unflagSeen(s.mailbox, a.uid);
    expect(await serverState(dovecot, s.mailbox)).toEqual([{ uid: a.uid, seen: false }]);

    await t.app.imap.pollAccount(s.accountId);
    expect(await serverState(dovecot, s.mailbox)).toEqual([{ uid: a.uid, seen: true }]);
    expect(await messagesOf(s.accountId)).toHaveLength(1);
  });

  it("switching the server action from LEAVE to SEEN or MOVE applies it to new mail only; a crash leftover of the last batch is still repaired (probe, 2026-11-23)", async () => {
    const s = await setup({ afterProcess: "LEAVE" });
    // Mail ingested under LEAVE: left unseen where it is.
    await appendMany(
      dovecot,
      [1, 2, 3].map((i) => customerMail(s.address, `sw-old-${i}@customer.example`, `Old ${i}`)),
      s.mailbox,
    );
    await t.app.imap.pollAccount(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(3);
    const old = (await serverState(dovecot, s.mailbox)).map((m) => m.uid);
    expect(old).toHaveLength(3);
    const switchTo = (afterProcess: "SEEN" | "MOVE", moveTo: string | null = null) =>
      t.db.db
        .update(mailAccount)
        .set({ imapAfterProcess: afterProcess, imapMoveTo: moveTo, updatedAt: new Date() })
        .where(eq(mailAccount.id, s.accountId));

    // Switched to SEEN: the next session's repair leaves the mail ingested under LEAVE unread
    // (it flagged the last batch's worth of UIDs below the checkpoint).
    await switchTo("SEEN");
    await t.app.imap.pollAccount(s.accountId);
    expect(await serverState(dovecot, s.mailbox)).toEqual(old.map((uid) => ({ uid, seen: false })));
    // New mail gets \Seen; lost in a crash (committed, not flagged), the repair flags it again.
    const a = await dovecot.appendMessage(
      customerMail(s.address, "sw-new-1@customer.example", "New 1"),
      s.mailbox,
    );
    await t.app.imap.pollAccount(s.accountId);
    await unflagSeen(s.mailbox, a.uid);
    await t.app.imap.pollAccount(s.accountId);
    expect(await serverState(dovecot, s.mailbox)).toEqual([
      ...old.map((uid) => ({ uid, seen: false })),
      { uid: a.uid, seen: true },
    ]);

    // Switched to MOVE: nothing ingested before is moved (it moved all four), only new mail.
    const done = `SwDone${Date.now()}`;
    await switchTo("MOVE", done);
    await t.app.imap.pollAccount(s.accountId);
    expect((await serverState(dovecot, s.mailbox)).map((m) => m.uid)).toEqual([...old, a.uid]);
    await dovecot.appendMessage(customerMail(s.address, "sw-new-2@customer.example", "New 2"), s.mailbox);
    await t.app.imap.pollAccount(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(5);
    expect((await serverState(dovecot, s.mailbox)).map((m) => m.uid)).toEqual([...old, a.uid]);
    expect(await serverState(dovecot, done)).toHaveLength(1);
    expect(await checkpointOf(s.accountId)).toMatchObject({ batchAction: "MOVE" });
  });

  it("UIDVALIDITY change: resync re-reads the mailbox and stores no duplicates", async () => {
    const s = await setup({ afterProcess: "LEAVE" });
    await dovecot.appendMessage(customerMail(s.address, "uv-1@customer.example", "One"), s.mailbox);
    // One of them without a Message-ID: only its bytes can tell it was stored already.
    const noId = Buffer.from(
      `From: Old Client <old@customer.example>\r\nTo: ${s.address}\r\nSubject: No id\r\n` +
        "Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nSent by a client that sets no Message-ID.\r\n",
    );
    await appendMany(
      dovecot,
      [...[2, 3].map((i) => customerMail(s.address, `uv-${i}@customer.example`, `Uv ${i}`)), noId],
      s.mailbox,
    );
    await t.app.imap.pollAccount(s.accountId);
    const before = await checkpointOf(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(4);
    expect((await messagesOf(s.accountId)).filter((m) => m.messageIdHeader === null)).toHaveLength(1);

    await dovecot.setUidValidity(s.mailbox, before!.uidValidity + 1000);
    await t.app.imap.pollAccount(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(4);
    const after = await checkpointOf(s.accountId);
    expect(after).toMatchObject({ uidValidity: before!.uidValidity + 1000, lastUid: before!.lastUid });

    // A lost index renumbers from 1 under yet another UIDVALIDITY: still no duplicates,
    // and new mail after the resync is fetched normally.
    await dovecot.recreateMailbox(s.mailbox);
    const d = await dovecot.appendMessage(
      customerMail(s.address, "uv-4@customer.example", "Four"),
      s.mailbox,
    );
    expect(d.uidValidity).not.toBe(after!.uidValidity);
    await t.app.imap.pollAccount(s.accountId);
    const msgs = await messagesOf(s.accountId);
    expect(msgs.map((m) => m.messageIdHeader ?? "(none)").sort()).toEqual([
      "(none)",
      "uv-1@customer.example",
      "uv-2@customer.example",
      "uv-3@customer.example",
      "uv-4@customer.example",
    ]);
    expect(await checkpointOf(s.accountId)).toMatchObject({ uidValidity: d.uidValidity, lastUid: d.uid });
  });

  it("UIDVALIDITY change after retention purged old mail: the resync does not bring it back", async () => {
    const s = await setup({ afterProcess: "LEAVE" });
    await t.db.db.update(tenant).set({ retentionDays: 30 }).where(eq(tenant.id, t.tenantId));
    try {
      const longAgo = new Date(Date.now() - 60 * 86_400_000);
      await dovecot.appendMessage(
        customerMail(s.address, "ret-1@customer.example", "Old"),
        s.mailbox,
        longAgo,
      );
      await dovecot.appendMessage(customerMail(s.address, "ret-2@customer.example", "New"), s.mailbox);
      // Never seen before: old mail is ingested like any other on a first sync.
      await t.app.imap.pollAccount(s.accountId);
      const first = await messagesOf(s.accountId);
      expect(first.map((m) => m.messageIdHeader).sort()).toEqual([
        "ret-1@customer.example",
        "ret-2@customer.example",
      ]);
      // The old one's conversation was closed long ago and retention purged it.
      const old = first.find((m) => m.messageIdHeader === "ret-1@customer.example")!;
      await t.db.db
        .update(conversation)
        .set({ status: "CLOSED", workState: "DONE", closedAt: new Date(Date.now() - 40 * 86_400_000) })
        .where(eq(conversation.id, old.conversationId));
      const purged = await purgeExpired(
        { db: t.db.db, clock: { now: () => new Date() }, log: silentLogger },
        { tenantId: t.tenantId },
      );
      expect(purged[0]).toMatchObject({ conversations: 1 });
      expect((await messagesOf(s.accountId)).map((m) => m.messageIdHeader)).toEqual([
        "ret-2@customer.example",
      ]);

      const before = await checkpointOf(s.accountId);
      await dovecot.setUidValidity(s.mailbox, before!.uidValidity + 1000);
      await t.app.imap.pollAccount(s.accountId);
      expect((await messagesOf(s.accountId)).map((m) => m.messageIdHeader)).toEqual([
        "ret-2@customer.example",
      ]);
      expect(await checkpointOf(s.accountId)).toMatchObject({
        uidValidity: before!.uidValidity + 1000,
        lastUid: before!.lastUid,
      });
      // Not lost in case it never came in: recorded once (raw kept), and an admin can let it in.
      const expired = () =>
        t.db.db
          .select()
          .from(rejectedMessage)
          .where(and(eq(rejectedMessage.accountId, s.accountId), eq(rejectedMessage.reason, "expired")));
      const [rec] = await expired();
      expect(rec).toMatchObject({ messageIdHeader: "ret-1@customer.example" });
      expect(rec!.rawMessageId).not.toBeNull();
      expect(rec!.receivedAt.getTime()).toBeGreaterThan(Date.now() - 60_000); // lasts a period from now
      await dovecot.setUidValidity(s.mailbox, before!.uidValidity + 2000);
      await t.app.imap.pollAccount(s.accountId);
      expect(await expired()).toHaveLength(1);
      const released = await t.ok(
        `mutation($id: ID!) { releaseRejectedMessage(id: $id) { __typename ... on IngestOutcome { status created } } }`,
        { id: encodeId("RejectedMessage", rec!.id) },
      );
      expect(released.releaseRejectedMessage).toMatchObject({ status: "stored", created: true });
      expect((await messagesOf(s.accountId)).map((m) => m.messageIdHeader).sort()).toEqual([
        "ret-1@customer.example",
        "ret-2@customer.example",
      ]);
    } finally {
      await t.db.db.update(tenant).set({ retentionDays: null }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("processing limit: fetching pauses (mail stays on the server) and resumes below the limit", async () => {
    const s = await setup();
    await dovecot.appendMessage(customerMail(s.address, "lim-1@customer.example", "First"), s.mailbox);
    await t.app.imap.pollAccount(s.accountId);
    expect(await messagesOf(s.accountId)).toHaveLength(1);
    const [{ open } = { open: 0 }] = await t.db.db
      .select({ open: count() })
      .from(conversation)
      .where(and(eq(conversation.tenantId, t.tenantId)));
    // Exactly at the limit is fine, above it pauses: the limit is the open count minus one.
    await t.db.db
      .update(tenant)
      .set({ processingLimit: open - 1 })
      .where(eq(tenant.id, t.tenantId));
    try {
      await appendMany(
        dovecot,
        [2, 3].map((i) => customerMail(s.address, `lim-${i}@customer.example`, `Lim ${i}`)),
        s.mailbox,
      );
      await t.app.imap.pollAccount(s.accountId);
      expect(await messagesOf(s.accountId)).toHaveLength(1);
      const state = await serverState(dovecot, s.mailbox);
      expect(state).toHaveLength(3);
      expect(state.filter((m) => !m.seen)).toHaveLength(2);

      await t.db.db
        .update(tenant)
        .set({ processingLimit: open + 10 })
        .where(eq(tenant.id, t.tenantId));
      await t.app.imap.pollAccount(s.accountId);
      expect(await messagesOf(s.accountId)).toHaveLength(3);
      expect((await serverState(dovecot, s.mailbox)).every((m) => m.seen)).toBe(true);
    } finally {
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
    }
  });

  /** The tenant's open conversations (not RESOLVED or CLOSED), as the processing limit counts them. */
  const openNow = async () => {
    const [{ open } = { open: 0 }] = await t.db.db
      .select({ open: count() })
      .from(conversation)
      .where(
        and(eq(conversation.tenantId, t.tenantId), notInArray(conversation.status, ["RESOLVED", "CLOSED"])),
      );
    return open;
  };

  it("processing limit: one poll takes only the room left, not a whole batch", async () => {
    // A batch of 50 took a tenant with a limit of 3 to 50 open conversations (probe, session 16).
    const s = await setup();
    const before = await openNow();
    await t.db.db
      .update(tenant)
      .set({ processingLimit: before + 2 }) // room for 3
      .where(eq(tenant.id, t.tenantId));
    try {
      await appendMany(
        dovecot,
        Array.from({ length: 60 }, (_, i) =>
          customerMail(s.address, `room-${i}@customer.example`, `Room ${i}`),
        ),
        s.mailbox,
      );
      await t.app.imap.pollAccount(s.accountId);
      expect(await messagesOf(s.accountId)).toHaveLength(3);
      expect(await openNow()).toBe(before + 3);
      const state = await serverState(dovecot, s.mailbox);
      expect(state.filter((m) => m.seen)).toHaveLength(3);
      // With room again, the rest comes, in order, nothing doubled.
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
      await t.app.imap.pollAccount(s.accountId);
      const got = await messagesOf(s.accountId);
      expect(got).toHaveLength(60);
      expect(new Set(got.map((m) => m.messageIdHeader)).size).toBe(60);
    } finally {
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("processing limit: replies to open conversations flow on at the limit (re-probe, session 16)", async () => {
    // Each batch was cut to the room left and the sync paused after it, so at the limit
    // replies (which open nothing) came in one per 15 s recheck.
    const s = await setup();
    await dovecot.appendMessage(customerMail(s.address, "root-room@customer.example", "Root"), s.mailbox);
    await t.app.imap.pollAccount(s.accountId);
    const before = await openNow();
    await t.db.db.update(tenant).set({ processingLimit: before }).where(eq(tenant.id, t.tenantId)); // room for 1
    try {
      await appendMany(
        dovecot,
        Array.from({ length: 20 }, (_, i) =>
          customerMail(s.address, `reply-room-${i}@customer.example`, "Root", "root-room@customer.example"),
        ),
        s.mailbox,
      );
      // Counting the message sources fetched: at room 1 each reply cost a whole batch and
      // the one fetched ahead (second re-probe: 15,050 sources for 200 replies).
      const proto = ImapFlow.prototype as unknown as {
        fetchAll: (range: unknown, query: { source?: unknown }, options: unknown) => Promise<unknown[]>;
      };
      const fetchAll = proto.fetchAll;
      let sources = 0;
      proto.fetchAll = async function (this: unknown, range, query, options) {
        const got = await fetchAll.call(this, range, query, options);
        if (query?.source) sources += got.length;
        return got;
      };
      try {
        await t.app.imap.pollAccount(s.accountId);
      } finally {
        proto.fetchAll = fetchAll;
      }
      expect(await messagesOf(s.accountId)).toHaveLength(21);
      expect(await openNow()).toBe(before);
      expect(sources).toBeLessThanOrEqual(25);
    } finally {
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("processing limit: a running worker pauses and resumes by itself", async () => {
    const s = await setup();
    await dovecot.appendMessage(customerMail(s.address, "wlim-0@customer.example", "Zero"), s.mailbox);
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
      pauseRecheckSeconds: 1,
    });
    try {
      await t.db.db.update(tenant).set({ processingLimit: 0 }).where(eq(tenant.id, t.tenantId));
      imap.start();
      await waitFor("worker lock", async () => imap.workers().get(s.accountId)?.holdsLock);
      await imap.workers().get(s.accountId)!.requestSync();
      expect(await messagesOf(s.accountId)).toHaveLength(0);
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
      await waitFor("resume", async () => (await messagesOf(s.accountId)).length === 1, 5000);
    } finally {
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
      await imap.stop();
    }
  });

  it("an account without an address pauses fetching (mail stays on the server, status untouched) and resumes within the recheck once an address points at it (probe, 2026-11-23)", async () => {
    const s = await setup();
    await dovecot.appendMessage(customerMail(s.address, "na-0@customer.example", "Zero"), s.mailbox);
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
      pauseRecheckSeconds: 1,
    });
    const pointAt = (accountId: string | null) =>
      t.db.db.update(emailAddress).set({ accountId }).where(eq(emailAddress.id, s.addressId));
    try {
      imap.start();
      await waitFor("first mail", async () => (await messagesOf(s.accountId)).length === 1);
      // The address is moved off the account (to another one, or none), and mail comes in.
      await pointAt(null);
      const r = await dovecot.appendMessage(
        customerMail(s.address, "na-1@customer.example", "One"),
        s.mailbox,
      );
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(await messagesOf(s.accountId)).toHaveLength(1);
      expect(await serverState(dovecot, s.mailbox)).toContainEqual({ uid: r.uid, seen: false });
      // Not broken: it was marked INVALID, "permanent: account has no address".
      const [acc] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
      expect(acc).toMatchObject({ status: "VALID", lastError: null });
      // Back on the account: the waiting mail comes in at the next recheck (it took 52 s).
      await pointAt(s.accountId);
      const started = Date.now();
      await waitFor("the waiting mail", async () => (await messagesOf(s.accountId)).length === 2, 5000);
      expect(Date.now() - started).toBeLessThan(5000);
      await waitFor("\\Seen after commit", async () =>
        (await serverState(dovecot, s.mailbox)).every((x) => x.seen),
      );
    } finally {
      await pointAt(s.accountId);
      await imap.stop();
    }
  });

  it("IDLE: a new message becomes a conversation within seconds, without the poll", async () => {
    const s = await setup();
    // The poll interval is an hour: only IDLE's EXISTS can bring the message in.
    const imap: ImapConnector = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
    });
    try {
      await dovecot.appendMessage(customerMail(s.address, "idle-0@customer.example", "Before"), s.mailbox);
      imap.start();
      await waitFor("initial sync", async () => (await messagesOf(s.accountId)).length === 1);
      const started = Date.now();
      const r = await dovecot.appendMessage(
        customerMail(s.address, "idle-1@customer.example", "Live"),
        s.mailbox,
      );
      const m = await waitFor(
        "IDLE delivery",
        async () => (await messagesOf(s.accountId)).find((x) => x.uid === r.uid),
        5000,
      );
      expect(Date.now() - started).toBeLessThan(5000);
      const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, m.conversationId));
      expect(c).toMatchObject({ subject: "Live", queueId: s.queueId });
      expect(await checkpointOf(s.accountId)).toMatchObject({ lastUid: r.uid });
      await waitFor("\\Seen after commit", async () =>
        (await serverState(dovecot, s.mailbox)).every((x) => x.seen),
      );
      // While the worker holds the mailbox, a poll in this process asks it to sync…
      expect(await imap.pollAccount(s.accountId)).toBe("synced");
      // …and another instance's poll (t.app's connector runs no worker) skips it.
      expect(await t.app.imap.pollAccount(s.accountId)).toBe("skipped");
    } finally {
      await imap.stop();
    }
    // Stopped cleanly: the lock is free again.
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
  });

  it("bad credentials: mapped to auth, the account is marked INVALID with the reason", async () => {
    const s = await setup({ password: "wrong" });
    await dovecot.appendMessage(customerMail(s.address, "auth-1@customer.example", "Auth"), s.mailbox);
    const err = await t.app.imap.pollAccount(s.accountId).catch((e) => e);
    expect(err).toBeInstanceOf(ImapConnectorError);
    expect(err.kind).toBe("auth");
    const [acc] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
    expect(acc?.status).toBe("INVALID");
    expect(acc?.lastError).toMatch(/^auth:/);
    expect(await messagesOf(s.accountId)).toHaveLength(0);
    // Parked until an admin edits it: no worker, no poll.
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("gone");
  });

  it("test connection (the check testMailAccount uses): OK or a classified error; nothing changes on the server", async () => {
    const s = await setup();
    await dovecot.appendMessage(customerMail(s.address, "chk-1@customer.example", "Check"), s.mailbox);
    const settings = {
      host: dovecot.host,
      port: dovecot.port,
      tls: false,
      user: dovecot.user,
      password: dovecot.password,
      mailbox: s.mailbox,
    };
    expect(await checkImap(settings, 10_000)).toMatchObject({ ok: true });
    // Read-only: the check never marks mail as seen.
    expect(await serverState(dovecot, s.mailbox)).toEqual([expect.objectContaining({ seen: false })]);
    expect(await checkImap({ ...settings, password: "nope" }, 10_000)).toMatchObject({
      ok: false,
      kind: "AUTH",
    });
    expect(await checkImap({ ...settings, mailbox: "NoSuchFolder" }, 10_000)).toMatchObject({
      ok: false,
      kind: "MAILBOX",
    });
    expect(await checkImap({ ...settings, port: 1 }, 10_000)).toMatchObject({
      ok: false,
      kind: "CONNECTION",
    });
  });
});

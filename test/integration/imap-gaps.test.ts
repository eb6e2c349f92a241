import { and, eq, sql } from "drizzle-orm";
import { ImapFlow } from "imapflow";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createImapConnector,
  DELIVERY_FIELDS,
  defaultImapSettings,
  deliveryAddresses,
  recipientCandidates,
} from "../../src/connectors/imap.js";
import { HEADLINE_BYTES } from "../../src/connectors/mime/headline.js";
import { conversation, event, message, rejectedMessage, tenant } from "../../src/db/schema/index.js";
import type { TestApp } from "../helpers/app.js";
import { type DovecotInstance, requireDovecot } from "../helpers/dovecot.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";
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

// The three audit gaps of the IMAP connector: oversize mail downloaded whole before the
// size check, the recipient address taken from To/Cc only, and the tenant's email channel
// switch ignored by IMAP.

const LIMIT = 128 * 1024;
const enabled = requireDovecot();

let t: TestApp;
let dovecot: DovecotInstance;

const setup = (opts: { afterProcess?: "SEEN" | "LEAVE" } = {}) => newDovecotMailbox(t, dovecot, "gap", opts);
const messagesOf = (accountId: string) => messagesOfAccount(t.db.db, accountId);

async function rejectedOf(accountId: string) {
  return t.db.db
    .select()
    .from(rejectedMessage)
    .where(eq(rejectedMessage.accountId, accountId))
    .orderBy(rejectedMessage.uid);
}

const checkpointOf = (accountId: string) => checkpointOfAccount(t.db.db, accountId);

/** A mail of about `bytes` bytes (CRLF throughout, so Dovecot's RFC822.SIZE is its length). */
function bigMail(to: string, id: string, bytes: number, headers: Record<string, string> = {}): Buffer {
  const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const text = Array.from({ length: Math.ceil(bytes / (line.length + 2)) }, () => line).join("\r\n");
  return buildRawMail({ to, subject: `Big ${id}`, messageId: id, text, headers });
}

/** Every fetchAll of every imapflow client in this process: what was asked and the source bytes of each UID. */
function watchFetches() {
  const calls: { uids: number[]; query: Record<string, unknown>; sourceBytes: Map<number, number> }[] = [];
  const original = ImapFlow.prototype.fetchAll;
  const spy = vi.spyOn(ImapFlow.prototype, "fetchAll").mockImplementation(async function (
    this: ImapFlow,
    range,
    query,
    options,
  ) {
    const got = await original.call(this, range, query, options);
    calls.push({
      uids: Array.isArray(range) ? (range as number[]) : [],
      query: query as Record<string, unknown>,
      sourceBytes: new Map(got.map((m) => [m.uid, m.source?.length ?? 0])),
    });
    return got;
  });
  return { calls, restore: () => spy.mockRestore() };
}

describe("deliveryAddresses / recipientCandidates: the envelope recipient from the delivering MTA's fields", () => {
  it.each([
    ["Delivered-To: b@acme.test\r\n\r\n", { original: [], final: ["b@acme.test"] }],
    ["X-Original-To: <b@acme.test>\r\n", { original: ["b@acme.test"], final: [] }],
    [
      "Envelope-To: x@elsewhere.example, b@acme.test\r\n",
      { original: ["x@elsewhere.example", "b@acme.test"], final: [] },
    ],
    ["x-envelope-to: b@acme.test\r\n", { original: ["b@acme.test"], final: [] }],
    // Postfix's local delivery, one hop: the address before alias expansion, and after.
    [
      "X-Original-To: sales@acme.test\r\nDelivered-To: support@acme.test\r\n",
      { original: ["sales@acme.test"], final: ["support@acme.test"] },
    ],
    // A forward: the last hop (the mailbox) on top, the address the sender used below it.
    [
      "Delivered-To: box@gmail.example\r\nDelivered-To:\r\n b@acme.test\r\n",
      { original: [], final: ["b@acme.test", "box@gmail.example"] },
    ],
    ["To: b@acme.test\r\nReceived: from x (for <b@acme.test>)\r\n", { original: [], final: [] }],
    ["", { original: [], final: [] }],
  ])("%j → %j", (headers, expected) => {
    expect(deliveryAddresses(Buffer.from(headers))).toEqual(expected);
  });

  it("ranks the original envelope recipient, then To/Cc, then Delivered-To", () => {
    const headers = Buffer.from("Delivered-To: final@acme.test\r\nX-Original-To: original@acme.test\r\n");
    expect(recipientCandidates(headers, ["to@acme.test", "cc@acme.test"])).toEqual([
      "original@acme.test",
      "to@acme.test",
      "cc@acme.test",
      "final@acme.test",
    ]);
    expect(recipientCandidates(undefined, ["to@acme.test"])).toEqual(["to@acme.test"]);
  });

  it("asks the server for the four delivery fields", () => {
    expect([...DELIVERY_FIELDS].sort()).toEqual([
      "delivered-to",
      "envelope-to",
      "x-envelope-to",
      "x-original-to",
    ]);
  });
});

describe.skipIf(!enabled)("IMAP connector gaps (real Dovecot)", () => {
  withDovecotApp((started) => ({ t, dovecot } = started), { env: { MAX_MESSAGE_BYTES: String(LIMIT) } });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("oversize: recorded as rejected (oversize, real size, its sender) without downloading its body; the mail around it is stored, the checkpoint and \\Seen pass it", async () => {
    const s = await setup();
    const big = bigMail(s.address, "big-1@customer.example", 1024 * 1024);
    expect(big.length).toBeGreaterThan(8 * LIMIT);
    await appendMany(
      dovecot,
      [
        customerMail(s.address, "small-1@customer.example", "Before"),
        big,
        customerMail(s.address, "small-2@customer.example", "After"),
      ],
      s.mailbox,
    );
    const [first, bigOne, last] = await serverState(dovecot, s.mailbox);

    const watch = watchFetches();
    // The app's own connector: the limit comes from MAX_MESSAGE_BYTES.
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
    watch.restore();

    // The point: of the big message only its first HEADLINE_BYTES were asked for and came
    // back (before: one FETCH of the whole batch's BODY.PEEK[], the 1 MB with it).
    const bigFetches = watch.calls.filter((c) => c.query.source && c.uids.includes(bigOne!.uid));
    expect(bigFetches.map((c) => c.query.source)).toEqual([{ start: 0, maxLength: HEADLINE_BYTES }]);
    const received = watch.calls.reduce((n, c) => n + (c.sourceBytes.get(bigOne!.uid) ?? 0), 0);
    expect(received).toBe(HEADLINE_BYTES);

    expect((await messagesOf(s.accountId)).map((m) => [m.messageIdHeader, m.uid])).toEqual([
      ["small-1@customer.example", first!.uid],
      ["small-2@customer.example", last!.uid],
    ]);
    const rejected = await rejectedOf(s.accountId);
    expect(rejected).toMatchObject([
      {
        reason: "oversize",
        sizeBytes: big.length,
        uid: bigOne!.uid,
        addressId: s.addressId,
        rawMessageId: null,
        // Read from the header block at the start of the message, as SMTP does.
        messageIdHeader: "big-1@customer.example",
        fromAddress: "alice@customer.example",
        subject: "Big big-1@customer.example",
      },
    ]);
    expect(rejected[0]!.detail).toContain(`exceeds the limit of ${LIMIT}`);
    const events = await t.db.db
      .select()
      .from(event)
      .where(
        and(eq(event.type, "message.rejected"), sql`${event.payload}->>'rejectedId' = ${rejected[0]!.id}`),
      );
    expect(events).toHaveLength(1);
    expect(await checkpointOf(s.accountId)).toMatchObject({ lastUid: last!.uid });
    expect((await serverState(dovecot, s.mailbox)).every((m) => m.seen)).toBe(true);

    // Nothing left to do: a second poll fetches and records nothing again.
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
    expect(await rejectedOf(s.accountId)).toHaveLength(1);
  });

  it("a batch's sources stop at its byte budget: big-but-allowed mail is fetched in smaller batches, in order, nothing skipped", async () => {
    const s = await setup();
    const sizes = [60, 60, 60, 300, 60, 60];
    const raws = sizes.map((kb, i) => bigMail(s.address, `budget-${i}@customer.example`, kb * 1024));
    await appendMany(dovecot, raws, s.mailbox);
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      maxMessageBytes: LIMIT,
      batchBytes: 150 * 1024,
    });
    const watch = watchFetches();
    try {
      expect(await imap.pollAccount(s.accountId)).toBe("synced");
    } finally {
      watch.restore();
      await imap.stop();
    }
    // 60 + 60 fit into 150 KB, a third does not; the oversize one costs nothing.
    // (The whole sources, not the oversize one's head, fetched with its ENVELOPE.)
    const whole = watch.calls.filter((c) => c.query.source && !c.query.envelope);
    expect(whole.map((c) => c.uids.length)).toEqual([2, 2, 1]);
    expect((await messagesOf(s.accountId)).map((m) => m.messageIdHeader)).toEqual(
      [0, 1, 2, 4, 5].map((i) => `budget-${i}@customer.example`),
    );
    expect(await rejectedOf(s.accountId)).toMatchObject([{ reason: "oversize", sizeBytes: raws[3]!.length }]);
    const all = await serverState(dovecot, s.mailbox);
    expect(await checkpointOf(s.accountId)).toMatchObject({ lastUid: all.at(-1)!.uid });
    expect(all.every((m) => m.seen)).toBe(true);
  });

  it("all mailboxes of a process hold at most IMAP_MAX_BUFFERED_MB together: two mailboxes drained at once take turns, nothing skipped, everything given back", async () => {
    const a = await setup();
    const b = await setup();
    for (const s of [a, b]) {
      await appendMany(
        dovecot,
        [0, 1, 2, 3].map((i) => bigMail(s.address, `shared-${s.accountId}-${i}@customer.example`, 60 * 1024)),
        s.mailbox,
      );
    }
    // A batch is two 60 KB mails (150 KB per batch); the process may hold 100 KB: one
    // batch at a time, across both mailboxes and their fetch-ahead.
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      maxMessageBytes: LIMIT,
      batchBytes: 150 * 1024,
      bufferedBytes: 100 * 1024,
    });
    try {
      expect(await Promise.all([imap.pollAccount(a.accountId), imap.pollAccount(b.accountId)])).toEqual([
        "synced",
        "synced",
      ]);
    } finally {
      await imap.stop();
    }
    for (const s of [a, b]) expect(await messagesOf(s.accountId)).toHaveLength(4);
    expect(imap.budget.peak).toBeGreaterThan(100 * 1024); // one batch over the budget, alone
    expect(imap.budget.peak).toBeLessThanOrEqual(150 * 1024);
    expect(imap.budget.held).toBe(0);
  });

  it("recipient address: X-Original-To / Envelope-To, then To/Cc, then Delivered-To — the first naming one of the account's addresses; else the first address", async () => {
    const s = await setup();
    // A second address of the same account, in a queue of its own (created later: not the default).
    const second = await createQueueWithAddress(t.db.db, t.tenantId, {
      address: s.address.replace("@", "-sales@"),
      addressFields: { accountId: s.accountId },
    });
    const mail = (id: string, to: string, headers: Record<string, string>) =>
      buildRawMail({ to, subject: id, messageId: `${id}@customer.example`, headers });
    await appendMany(
      dovecot,
      [
        // Bcc: our address only in Delivered-To.
        mail("bcc", "someone@customer.example", { "Delivered-To": second.address }),
        // Bcc'd to the second address while To names the first: Postfix says which copy this is.
        mail("alias", s.address, { "X-Original-To": second.address.toUpperCase() }),
        // Exim lists several envelope recipients.
        mail("exim", "list@lists.example", { "Envelope-To": `x@elsewhere.example, ${second.address}` }),
        // Forwarded: each hop adds its Delivered-To on top, so the mailbox's own address (the
        // first) is above the address the sender used (the second).
        Buffer.concat([
          Buffer.from(`Delivered-To: ${s.address}\r\nDelivered-To: ${second.address}\r\n`),
          mail("forward", "list@lists.example", {}),
        ]),
        // An alias of the mailbox delivered over LMTP: Delivered-To names the mailbox (the
        // first address) on every mail, so To decides.
        mail("lmtp", second.address, { "Delivered-To": s.address }),
        // A delivery field naming none of ours: To decides.
        mail("to", second.address, { "Delivered-To": "box@mailhost.example" }),
        // Nothing of ours anywhere: the account's first address.
        mail("none", "list@lists.example", {}),
        // Oversize mail is routed the same way, from the fields fetched without its body.
        bigMail("list@lists.example", "big-bcc@customer.example", 2 * LIMIT, {
          "Delivered-To": second.address,
        }),
      ],
      s.mailbox,
    );
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");

    const rows = await t.db.db
      .select({ subject: conversation.subject, queueId: conversation.queueId })
      .from(message)
      .innerJoin(conversation, eq(conversation.id, message.conversationId))
      .where(eq(message.accountId, s.accountId));
    const queueOf = Object.fromEntries(rows.map((r) => [r.subject, r.queueId]));
    expect(queueOf).toEqual({
      bcc: second.queueId,
      alias: second.queueId,
      exim: second.queueId,
      forward: second.queueId,
      lmtp: second.queueId,
      to: second.queueId,
      none: s.queueId,
    });
    expect(await rejectedOf(s.accountId)).toMatchObject([
      { reason: "oversize", addressId: second.addressId },
    ]);
  });

  it("email channel off: nothing is fetched (mail stays unread on the server); switched on, the next poll fetches it", async () => {
    const s = await setup();
    await t.db.db.update(tenant).set({ emailEnabled: false }).where(eq(tenant.id, t.tenantId));
    try {
      await appendMany(
        dovecot,
        [1, 2].map((i) => customerMail(s.address, `off-${i}@customer.example`, `Off ${i}`)),
        s.mailbox,
      );
      expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
      expect(await messagesOf(s.accountId)).toHaveLength(0);
      expect(await rejectedOf(s.accountId)).toHaveLength(0);
      expect(await checkpointOf(s.accountId)).toBeNull();
      expect((await serverState(dovecot, s.mailbox)).map((m) => m.seen)).toEqual([false, false]);
    } finally {
      await t.db.db.update(tenant).set({ emailEnabled: true }).where(eq(tenant.id, t.tenantId));
    }
    expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
    expect((await messagesOf(s.accountId)).map((m) => m.messageIdHeader)).toEqual([
      "off-1@customer.example",
      "off-2@customer.example",
    ]);
    expect((await serverState(dovecot, s.mailbox)).every((m) => m.seen)).toBe(true);
  });

  it("email channel off: a running worker stops fetching, also new mail IDLE reports, and resumes by itself when it is switched on", async () => {
    const s = await setup();
    await dovecot.appendMessage(customerMail(s.address, "won-0@customer.example", "Zero"), s.mailbox);
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      maxMessageBytes: LIMIT,
      pollSeconds: 3600,
      pauseRecheckSeconds: 1,
    });
    try {
      imap.start();
      await waitFor("initial sync", async () => (await messagesOf(s.accountId)).length === 1);
      await t.db.db.update(tenant).set({ emailEnabled: false }).where(eq(tenant.id, t.tenantId));
      await dovecot.appendMessage(customerMail(s.address, "won-1@customer.example", "One"), s.mailbox);
      // IDLE's EXISTS and an explicit sync request both find the channel off.
      await imap.workers().get(s.accountId)!.requestSync();
      await imap.workers().get(s.accountId)!.requestSync();
      expect(await messagesOf(s.accountId)).toHaveLength(1);
      expect((await serverState(dovecot, s.mailbox)).map((m) => m.seen)).toEqual([true, false]);

      await t.db.db.update(tenant).set({ emailEnabled: true }).where(eq(tenant.id, t.tenantId));
      // No poll for an hour and no new mail: only the pause's re-check can bring it in.
      await waitFor("resume", async () => (await messagesOf(s.accountId)).length === 2, 5000);
    } finally {
      await t.db.db.update(tenant).set({ emailEnabled: true }).where(eq(tenant.id, t.tenantId));
      await imap.stop();
    }
  });
});

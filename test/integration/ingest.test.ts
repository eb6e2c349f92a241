import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LARGE_BYTEA_BYTES } from "../../src/db/fast.js";
import {
  attachment,
  contact,
  conversation,
  message,
  rawMessage,
  rejectedMessage,
} from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { DAY, ManualClock } from "../../src/engine/clock.js";
import { type IngestInput, type IngestSource, ingestMessages } from "../../src/engine/ingest/ingest.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { buildDeliveryReport, buildRawMail } from "../helpers/raw-mail.js";

const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;
let addr: { queueId: string; addressId: string; address: string };

const INGEST = `mutation($a: ID!, $raw: String!, $b64: Boolean) {
  ingestRawMessage(addressId: $a, raw: $raw, base64: $b64) {
    __typename
    ... on IngestOutcome { status created reason conversation { id ticketNumber status subject } }
    ... on NotFoundError { entity }
  }
}`;

async function ingest(raw: Buffer | string, key?: string) {
  const buf = typeof raw === "string" ? Buffer.from(raw) : raw;
  const r = await t.ok(
    INGEST,
    { a: encodeId("EmailAddress", addr.addressId), raw: buf.toString("base64"), b64: true },
    key,
  );
  return r.ingestRawMessage;
}

beforeAll(async () => {
  t = await startTestApp({ clock, env: { MAX_MESSAGE_BYTES: String(2 * 1024 * 1024) } });
  addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "support@acme.test" });
});
afterAll(async () => {
  await t?.stop();
});

describe("ingest pipeline", () => {
  it("opens a conversation in the address's queue with events", async () => {
    const r = await ingest(buildRawMail({ subject: "Printer on fire", messageId: "first@customer.example" }));
    expect(r).toMatchObject({
      status: "stored",
      created: true,
      conversation: { status: "NEW", subject: "Printer on fire" },
    });
    const d = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { queueId workState contact { email name }
        messages { edges { node { direction subject text from { address } } } }
        timeline { edges { node { type } } } } } }`,
      { id: r.conversation.id },
    );
    expect(d.node.queueId).toBe(encodeId("Queue", addr.queueId));
    expect(d.node.workState).toBe("WAITING");
    expect(d.node.contact).toEqual({ email: "alice@customer.example", name: "Alice" });
    expect(d.node.messages.edges.map((e: { node: unknown }) => e.node)).toEqual([
      {
        direction: "INBOUND",
        subject: "Printer on fire",
        text: expect.stringContaining("I need help"),
        from: { address: "alice@customer.example" },
      },
    ]);
    expect(d.node.timeline.edges.map((e: any) => e.node.type)).toEqual([
      "message.received",
      "conversation.created",
      "conversation.queued",
    ]);
  });

  it("threads a reply by In-Reply-To and by ticket number, and ignores a duplicate", async () => {
    const first = await ingest(buildRawMail({ subject: "Invoice", messageId: "inv-1@customer.example" }));
    const reply = await ingest(
      buildRawMail({
        subject: "Re: Invoice",
        messageId: "inv-2@customer.example",
        headers: { "In-Reply-To": "<inv-1@customer.example>" },
      }),
    );
    expect(reply).toMatchObject({
      status: "stored",
      created: false,
      conversation: { id: first.conversation.id },
    });
    const byTicket = await ingest(
      buildRawMail({
        subject: `Again [#${first.conversation.ticketNumber}]`,
        messageId: "inv-3@customer.example",
      }),
    );
    expect(byTicket.conversation.id).toBe(first.conversation.id);
    const dup = await ingest(
      buildRawMail({
        subject: `Again [#${first.conversation.ticketNumber}]`,
        messageId: "inv-3@customer.example",
      }),
    );
    expect(dup.status).toBe("duplicate");
  });

  it("keeps a duplicate of new mail a duplicate, though its contact and ticket were drawn ahead", async () => {
    // New mail on its own draws contact and ticket number with its opening read (drawAhead),
    // before the read says it is a duplicate: nothing of it may be stored.
    const raw = buildRawMail({
      from: "Dora <dora@customer.example>",
      subject: "Toner",
      messageId: "toner-1@customer.example",
    });
    const first = await ingest(raw);
    expect(first).toMatchObject({ status: "stored", created: true });
    const again = await ingest(raw);
    expect(again.status).toBe("duplicate");
    const db = t.db.db;
    const [{ n: convs }] = (await db.execute(
      sql`SELECT count(*)::int AS n FROM conversation c JOIN contact k ON k.id = c.contact_id
          WHERE k.email = 'dora@customer.example'`,
    )) as unknown as [{ n: number }];
    expect(convs).toBe(1);
    const [{ n: msgs }] = (await db.execute(
      sql`SELECT count(*)::int AS n FROM message WHERE message_id_header = 'toner-1@customer.example'`,
    )) as unknown as [{ n: number }];
    expect(msgs).toBe(1);
    const [{ n: contacts, name }] = (await db.execute(
      sql`SELECT count(*)::int AS n, max(name) AS name FROM contact WHERE email = 'dora@customer.example'`,
    )) as unknown as [{ n: number; name: string }];
    expect({ contacts, name }).toEqual({ contacts: 1, name: "Dora" });
    // The duplicate's ticket number was drawn with its read (that is the round trip saved)
    // and went unused: the next conversation's is one further on.
    const next = await ingest(buildRawMail({ subject: "Paper", messageId: "paper-1@customer.example" }));
    expect(next.conversation.ticketNumber).toBe(first.conversation.ticketNumber + 2);
  });

  it("makes the copies of one mail delivered to two of our addresses one conversation", async () => {
    const sales = await createQueueWithAddress(t.db.db, t.tenantId, { address: "sales@acme.test" });
    const body = buildRawMail({
      from: "Erik <erik@customer.example>",
      to: "support@acme.test, sales@acme.test",
      subject: "Quote",
      messageId: "quote-1@customer.example",
    });
    // Each mailbox's server put its own trace fields on top of the same mail.
    const copy = (rcpt: string, hop: string) =>
      Buffer.concat([
        Buffer.from(
          `Return-Path: <erik@customer.example>\r\nDelivered-To: ${rcpt}\r\n` +
            `Received: from mx.customer.example by ${hop} for <${rcpt}>; Wed, 01 May 2024 10:00:0${hop.length % 10} +0000\r\n`,
        ),
        body,
      ]);
    const first = await ingest(copy("support@acme.test", "imap-a.acme.test"));
    expect(first).toMatchObject({ status: "stored", created: true });
    const second = await t.ok(INGEST, {
      a: encodeId("EmailAddress", sales.addressId),
      raw: copy("sales@acme.test", "imap-bb.acme.test").toString("base64"),
      b64: true,
    });
    expect(second.ingestRawMessage.status).toBe("duplicate");
    const [{ n }] = (await t.db.db.execute(
      sql`SELECT count(*)::int AS n FROM message WHERE message_id_header = 'quote-1@customer.example'`,
    )) as unknown as [{ n: number }];
    expect(n).toBe(1);
  });

  it("makes copies of one mail that arrive at the same moment one message (two mailboxes fetched at once)", async () => {
    const billing = await createQueueWithAddress(t.db.db, t.tenantId, { address: "billing@acme.test" });
    const parse = (raw: Buffer) => t.app.engine.mime.parse(raw);
    const input = async (addressId: string, raw: Buffer, uid: number): Promise<IngestInput> => ({
      tenantId: t.tenantId,
      addressId,
      raw,
      parsed: await parse(raw),
      receivedAt: clock.now(),
      source: { kind: "smtp", mailFrom: "erik@customer.example", rcptTo: [`n${uid}@acme.test`] },
    });
    for (let round = 0; round < 5; round++) {
      const withId = buildRawMail({ subject: "Both at once", messageId: `race-${round}@customer.example` });
      const withoutId = buildRawMail({ subject: `No id ${round}`, messageId: null });
      // A batch (as IMAP fetches) and a single message (as SMTP delivers), both at once.
      const results = await Promise.all([
        ingestMessages(t.app.engine, [
          await input(addr.addressId, withId, 1),
          await input(addr.addressId, withoutId, 2),
        ]),
        ingestMessages(t.app.engine, [await input(billing.addressId, withId, 3)]),
        ingestMessages(t.app.engine, [await input(billing.addressId, withoutId, 4)]),
      ]);
      // Each mail stored once, its copy a duplicate.
      expect(
        results
          .flat()
          .map((r) => r.status)
          .sort(),
      ).toEqual(["duplicate", "duplicate", "stored", "stored"]);
      const rows = await t.db.db.execute<{ n: number }>(
        sql`SELECT count(*)::int AS n FROM message WHERE message_id_header = ${`race-${round}@customer.example`} OR subject = ${`No id ${round}`}`,
      );
      expect(rows[0]!.n).toBe(2);
    }
  });

  it("records a rejection once: dropped spam to two addresses, a delivery report twice, an unparseable mail twice", async () => {
    const drop = async (n: number) =>
      createQueueWithAddress(t.db.db, t.tenantId, {
        address: `drop${n}@acme.test`,
        addressFields: { spamRouting: "DROP" },
      });
    const [a, b] = [await drop(1), await drop(2)];
    const input = async (
      addressId: string,
      raw: Buffer,
      parsed?: IngestInput["parsed"],
    ): Promise<IngestInput> => ({
      tenantId: t.tenantId,
      addressId,
      raw,
      parsed: parsed ?? (await t.app.engine.mime.parse(raw)),
      receivedAt: clock.now(),
      source: { kind: "smtp", mailFrom: "x@spam.example", rcptTo: [] },
    });
    const statuses = async (inputs: IngestInput[]) => {
      const out: string[] = [];
      for (const i of inputs) out.push(...(await ingestMessages(t.app.engine, [i])).map((r) => r.status));
      return out;
    };
    const recorded = async (messageId: string) =>
      (
        await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.messageIdHeader, messageId))
      ).map((r) => r.reason);

    const spam = buildRawMail({
      subject: "WIN",
      messageId: "spam-1@spam.example",
      headers: { "X-Spam-Flag": "YES" },
    });
    expect(
      await statuses([
        await input(a.addressId, spam),
        await input(b.addressId, spam),
        await input(a.addressId, spam),
      ]),
    ).toEqual(["rejected", "duplicate", "duplicate"]);
    expect(await recorded("spam-1@spam.example")).toEqual(["spam_dropped"]);

    const report = buildDeliveryReport("support@acme.test", { messageId: "dsn-1@mx.customer.example" });
    expect(
      await statuses([await input(addr.addressId, report), await input(addr.addressId, report)]),
    ).toEqual(["report", "duplicate"]);
    expect(await recorded("dsn-1@mx.customer.example")).toEqual(["delivery_report"]);

    const broken = Buffer.from("Message-ID: <broken-1@customer.example>\r\n\r\n");
    const unparseable: IngestInput["parsed"] = {
      ok: false,
      reason: "unparseable",
      detail: "test",
      sizeBytes: broken.length,
      headline: { messageId: "broken-1@customer.example", from: null, subject: null },
    };
    expect(
      await statuses([
        await input(addr.addressId, broken, unparseable),
        await input(addr.addressId, broken, unparseable),
      ]),
    ).toEqual(["rejected", "duplicate"]);
    // A timeout too (each delivery is parsed anew; a second timeout adds nothing).
    const timedOut = { ...unparseable, reason: "timeout" as const };
    expect(
      await statuses([
        await input(addr.addressId, broken, timedOut),
        await input(addr.addressId, broken, timedOut),
      ]),
    ).toEqual(["rejected", "duplicate"]);
    expect((await recorded("broken-1@customer.example")).sort()).toEqual(["timeout", "unparseable"]);
  });

  it("still recognises an exact re-delivery of mail stored under the raw-bytes key", async () => {
    // Until 2026-11-22 every message's content_hash was the SHA-256 of its raw bytes.
    const raw = buildRawMail({ subject: "Old", messageId: "old-1@customer.example" });
    const first = await ingest(raw);
    expect(first.status).toBe("stored");
    await t.db.db
      .update(message)
      .set({ contentHash: createHash("sha256").update(raw).digest("hex") })
      .where(eq(message.messageIdHeader, "old-1@customer.example"));
    expect((await ingest(raw)).status).toBe("duplicate");
  });

  it("does not let a stranger join a conversation by guessing its ticket number", async () => {
    const first = await ingest(buildRawMail({ subject: "Private", messageId: "priv-1@customer.example" }));
    const stranger = await ingest(
      buildRawMail({
        from: "mallory@evil.example",
        subject: `Hi [#${first.conversation.ticketNumber}]`,
        messageId: "m-1@evil.example",
      }),
    );
    expect(stranger.created).toBe(true);
    expect(stranger.conversation.id).not.toBe(first.conversation.id);
  });

  it("reopens a closed conversation within the window and links a new one after it", async () => {
    const first = await ingest(
      buildRawMail({ from: "bob@customer.example", subject: "Closing", messageId: "c-1@customer.example" }),
    );
    const id =
      first.conversation.id.length > 0
        ? Buffer.from(first.conversation.id, "base64").toString().split(":")[1]!
        : "";
    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", closedAt: clock.now(), workState: "DONE" })
      .where(eq(conversation.id, id));
    clock.advance(10 * DAY);
    const within = await ingest(
      buildRawMail({
        from: "bob@customer.example",
        subject: "Re: Closing",
        messageId: "c-2@customer.example",
        headers: { "In-Reply-To": "<c-1@customer.example>" },
      }),
    );
    expect(within.conversation).toMatchObject({ id: first.conversation.id, status: "REOPENED" });
    const [row] = await t.db.db.select().from(conversation).where(eq(conversation.id, id));
    expect(row!.workState).toBe("WAITING");

    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", closedAt: clock.now(), workState: "DONE" })
      .where(eq(conversation.id, id));
    clock.advance(31 * DAY);
    const after = await ingest(
      buildRawMail({
        from: "bob@customer.example",
        subject: "Re: Closing",
        messageId: "c-3@customer.example",
        headers: { "In-Reply-To": "<c-2@customer.example>" },
      }),
    );
    expect(after.created).toBe(true);
    const linked = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { previousConversationId status } } }`,
      {
        id: after.conversation.id,
      },
    );
    expect(linked.node).toEqual({ previousConversationId: first.conversation.id, status: "NEW" });
  });

  it("lets an automatic reply join its conversation without reopening, requeueing or counting as the customer", async () => {
    const first = await ingest(
      buildRawMail({
        from: "olga@customer.example",
        subject: "Invoice",
        messageId: "ooo-1@customer.example",
      }),
    );
    const id = Buffer.from(first.conversation.id, "base64").toString().split(":")[1]!;
    const resolvedAt = clock.now();
    await t.db.db
      .update(conversation)
      .set({ status: "RESOLVED", resolvedAt, workState: "DONE" })
      .where(eq(conversation.id, id));
    const [was] = await t.db.db.select().from(conversation).where(eq(conversation.id, id));
    clock.advance(DAY);
    const outOfOffice = (n: number) =>
      buildRawMail({
        from: "olga@customer.example",
        subject: "Automatic reply: Re: Invoice",
        messageId: `ooo-${n}@customer.example`,
        headers: { "In-Reply-To": "<ooo-1@customer.example>", "Auto-Submitted": "auto-replied" },
      });
    const ooo = await ingest(outOfOffice(2));
    expect(ooo).toMatchObject({ status: "stored", created: false });
    expect(ooo.conversation).toMatchObject({ id: first.conversation.id, status: "RESOLVED" });
    const [row] = await t.db.db.select().from(conversation).where(eq(conversation.id, id));
    expect(row).toMatchObject({
      status: "RESOLVED",
      workState: "DONE",
      lastInboundAt: was!.lastInboundAt,
      lastActivityAt: was!.lastActivityAt,
    });
    const stored = await t.db.db.select().from(message).where(eq(message.conversationId, id));
    expect(stored.map((m) => m.messageIdHeader).sort()).toEqual([
      "ooo-1@customer.example",
      "ooo-2@customer.example",
    ]);

    // Closed, and past the reopen window: still no new conversation for an out-of-office.
    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", closedAt: clock.now() })
      .where(eq(conversation.id, id));
    clock.advance(60 * DAY);
    const late = await ingest(outOfOffice(3));
    expect(late).toMatchObject({
      created: false,
      conversation: { id: first.conversation.id, status: "CLOSED" },
    });

    // The same mail written by the customer reopens as before (a new conversation, here).
    const human = await ingest(
      buildRawMail({
        from: "olga@customer.example",
        subject: "Re: Invoice",
        messageId: "ooo-4@customer.example",
        headers: { "In-Reply-To": "<ooo-1@customer.example>" },
      }),
    );
    expect(human.created).toBe(true);
  });

  it("queues a conversation from when its mail was received, not when it was processed", async () => {
    const receivedAt = new Date(clock.now().getTime() - 3 * 3_600_000);
    const future = new Date(clock.now().getTime() + 3_600_000);
    const [held, skewed] = await ingestMessages(t.app.engine, [
      {
        tenantId: t.tenantId,
        addressId: addr.addressId,
        raw: buildRawMail({ subject: "Held back", messageId: "held-1@customer.example" }),
        parsed: await t.app.engine.mime.parse(
          buildRawMail({ subject: "Held back", messageId: "held-1@customer.example" }),
        ),
        receivedAt,
        source: { kind: "smtp", mailFrom: "a@customer.example", rcptTo: [addr.address] },
      },
      {
        tenantId: t.tenantId,
        addressId: addr.addressId,
        raw: buildRawMail({ subject: "Skewed", messageId: "skew-1@customer.example" }),
        parsed: await t.app.engine.mime.parse(
          buildRawMail({ subject: "Skewed", messageId: "skew-1@customer.example" }),
        ),
        receivedAt: future,
        source: { kind: "smtp", mailFrom: "a@customer.example", rcptTo: [addr.address] },
      },
    ] satisfies IngestInput[]);
    const enqueuedAt = async (r: typeof held) => {
      const [c] = await t.db.db
        .select({ at: conversation.enqueuedAt })
        .from(conversation)
        .where(eq(conversation.id, (r as { conversationId: string }).conversationId));
      return c!.at;
    };
    expect(await enqueuedAt(held)).toEqual(receivedAt);
    expect(await enqueuedAt(skewed)).toEqual(clock.now());
  });

  it("stores mail with NUL bytes in headers, body, HTML and file names (PostgreSQL text cannot hold them)", async () => {
    const raw = [
      "From: Nul\u0000 Sender <nul@customer.example>",
      "To: support@acme.test",
      "Subject: Null\u0000 byte",
      "Message-ID: <nul-1@customer.example>",
      "X-Custom: a\u0000b",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "body\u0000text",
      "--b",
      "Content-Type: text/html; charset=utf-8",
      "",
      "<p>html\u0000part</p>",
      "--b",
      'Content-Type: application/octet-stream; name="a\u0000.bin"',
      'Content-Disposition: attachment; filename="a\u0000.bin"',
      "",
      "binary\u0000data",
      "--b--",
      "",
    ].join("\r\n");
    const r = await ingest(raw);
    expect(r.status).toBe("stored");
    const [m] = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "nul-1@customer.example"));
    expect(m!.subject).toBe("Null byte");
    expect(m!.text).toContain("bodytext");
    expect(m!.parseWarnings).toContain("NUL characters removed");
  });

  it("stores mail whose Message-ID is too large for an index entry (2,970 bytes of CJK)", async () => {
    let id = "";
    for (let i = 0; i < 990; i++) id += String.fromCharCode(0x4e00 + ((i * 7919) % 20000));
    const raw = Buffer.from(
      `From: a@customer.example\r\nTo: support@acme.test\r\nSubject: Long id\r\nMessage-ID: <${id}@x>\r\n` +
        "Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n",
      "utf8",
    );
    const r = await ingest(raw);
    expect(r.status).toBe("stored");
  });

  it("stores a mail over 1 MB (sent to the database in parts) byte for byte: raw and attachment", async () => {
    const content = randomBytes(LARGE_BYTEA_BYTES + 100_000);
    const raw = buildRawMail({
      subject: "Large attachment",
      text: "see attached",
      attachments: [{ filename: "big.bin", contentType: "application/octet-stream", content }],
    });
    expect(raw.length).toBeGreaterThan(LARGE_BYTEA_BYTES);
    const r = await ingest(raw);
    expect(r.status).toBe("stored");
    const [m] = await t.db.db
      .select({ id: message.id, rawId: message.rawMessageId })
      .from(message)
      .where(eq(message.subject, "Large attachment"));
    const [stored] = await t.db.db.select().from(rawMessage).where(eq(rawMessage.id, m!.rawId!));
    expect(stored!.data.equals(raw)).toBe(true);
    const [att] = await t.db.db.select().from(attachment).where(eq(attachment.messageId, m!.id));
    expect(att!.data.equals(content)).toBe(true);
    expect(att!.sizeBytes).toBe(content.length);
  });

  it("keeps the raw MIME as received: out of line and not compressed, byte for byte", async () => {
    // Very compressible text: pglz would shrink it to a fraction — and spend the CPU to.
    const text = "The parcel has not arrived. ".repeat(2_000);
    const raw = buildRawMail({ subject: "Raw kept as received", text });
    expect(await ingest(raw)).toMatchObject({ status: "stored" });
    const [row] = await t.db.db.execute<{ exact: boolean; compression: string | null; stored: number }>(sql`
      SELECT r.data = ${raw}::bytea AS exact, pg_column_compression(r.data) AS compression,
             pg_column_size(r.data) AS stored
      FROM message m JOIN raw_message r ON r.id = m.raw_message_id
      WHERE m.subject = 'Raw kept as received'`);
    expect(row).toMatchObject({ exact: true, compression: null });
    expect(row!.stored).toBeGreaterThanOrEqual(raw.length);
  });

  it("records oversize mail as rejected with a reason, never silently", async () => {
    const big = buildRawMail({ subject: "Huge", text: "x".repeat(3 * 1024 * 1024) });
    const r = await ingest(big);
    expect(r).toMatchObject({ status: "rejected", reason: "oversize", conversation: null });
    const list = await t.ok(`{ rejectedMessages { edges { node { reason sizeBytes rawAvailable } } } }`);
    expect(list.rejectedMessages.edges[0].node).toMatchObject({ reason: "oversize", rawAvailable: false });
    expect(list.rejectedMessages.edges[0].node.sizeBytes).toBeGreaterThan(3 * 1024 * 1024);
  });

  it("serves sanitised HTML and attachments only to callers who may see them", async () => {
    const r = await ingest(
      buildRawMail({
        subject: "Look",
        html: `<p onclick="steal()">Hi<script>alert(1)</script><img src="https://tracker.example/p.gif"><a href="javascript:alert(2)">x</a></p>`,
        attachments: [
          { filename: "résumé.pdf", contentType: "application/pdf", content: Buffer.from("%PDF-1.4 test") },
        ],
      }),
    );
    const d = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { messages { edges { node { html remoteResources attachments { filename sizeBytes downloadPath } } } } } } }`,
      { id: r.conversation.id },
    );
    const m = d.node.messages.edges[0].node;
    expect(m.html).toContain("Hi");
    expect(m.html).not.toMatch(/<script|onclick|javascript:|\ssrc="https/i);
    expect(m.html).toContain(`data-remote-src="https://tracker.example/p.gif"`);
    expect(m.remoteResources).toEqual(["https://tracker.example/p.gif"]);
    expect(m.attachments[0]).toMatchObject({ filename: "résumé.pdf", sizeBytes: 13 });
    const base = t.url.replace("/graphql", "");
    const dl = await fetch(base + m.attachments[0].downloadPath, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    expect(dl.status).toBe(200);
    expect(Buffer.from(await dl.arrayBuffer()).toString()).toBe("%PDF-1.4 test");
    expect((await fetch(base + m.attachments[0].downloadPath)).status).toBe(401);
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "o@other.test" });
    const foreign = await fetch(base + m.attachments[0].downloadPath, {
      headers: { authorization: `Bearer ${other.apiKey}` },
    });
    expect(foreign.status).toBe(404);
    // Malformed paths are a 404 too, never a server error.
    for (const path of [
      "/attachments/%E0%A4%A",
      "/attachments/not-a-uuid",
      `${m.attachments[0].downloadPath}/x`,
    ]) {
      const r = await fetch(base + path, { headers: { authorization: `Bearer ${t.adminKey}` } });
      expect([path, r.status]).toEqual([path, 404]);
    }
  });

  it("hides conversations outside an agent's queues and foreign addresses", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const list = await t.ok(`{ conversations { edges { node { id } } } }`, {}, agent.key);
    expect(list.conversations.edges).toEqual([]);
    const all = await t.ok(`{ conversations(first: 100) { edges { node { id } } } }`);
    expect(all.conversations.edges.length).toBeGreaterThan(3);
    const node = await t.ok(
      `query($id: ID!) { node(id: $id) { id } }`,
      { id: all.conversations.edges[0].node.id },
      agent.key,
    );
    expect(node.node).toBeNull();
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other2", adminEmail: "o2@other.test" });
    const r = await ingest(buildRawMail({ subject: "x" }), other.apiKey);
    expect(r).toMatchObject({ __typename: "NotFoundError", entity: "EmailAddress" });
  });

  it("finds conversations by ticket number and full text", async () => {
    const r = await ingest(
      buildRawMail({
        subject: "Quantum flux capacitor",
        messageId: "q-1@customer.example",
        text: "The capacitor is fluxing",
      }),
    );
    const byTicket = await t.ok(`query($n: Int!) { conversationByTicket(ticketNumber: $n) { id } }`, {
      n: r.conversation.ticketNumber,
    });
    expect(byTicket.conversationByTicket.id).toBe(r.conversation.id);
    const byText = await t.ok(`{ conversations(filter: { text: "fluxing" }) { edges { node { id } } } }`);
    expect(byText.conversations.edges.map((e: any) => e.node.id)).toEqual([r.conversation.id]);
  });
});

// Found by a probe (2026-11-23): a customer writing from postmaster@ with a delivery
// subject was recorded as a delivery report that no agent saw, and an Exim delay warning
// opened a conversation with mailer-daemon@ as its contact.
describe("senders without a usable From address", () => {
  it("each gets a contact of its own; none is pooled with another", async () => {
    // Until session 16 all of them became one contact, unknown@invalid, sharing history,
    // attributes and the preferred agent (probe).
    const heads = [
      "",
      "From: John Smith\r\n",
      "From: Mary Major\r\n",
      "From: <>\r\n",
      "From: Root <root@localhost>\r\n",
    ];
    const contacts: { email: string; name: string | null }[] = [];
    for (const [i, head] of heads.entries()) {
      const r = await ingest(
        `${head}To: support@acme.test\r\nSubject: Anonymous ${i}\r\nMessage-ID: <anon-${i}@x.example>\r\n\r\nhello\r\n`,
      );
      expect(r.status).toBe("stored");
      const d = await t.ok(
        `query($id: ID!) { node(id: $id) { ... on Conversation { contact { id email name } } } }`,
        {
          id: r.conversation.id,
        },
      );
      contacts.push(d.node.contact);
    }
    expect(new Set(contacts.map((c) => c.email)).size).toBe(heads.length);
    for (const c of contacts) expect(c.email).toMatch(/^unknown-[0-9a-f-]{36}@invalid$/);
    // A name is kept where the parser kept the mailbox (an address a contact cannot use:
    // a dotless domain); a name alone ("From: John Smith") the parser drops with the mailbox.
    expect(contacts.map((c) => c.name)).toEqual(["", "", "", "", "Root"]);
  });

  it("a re-delivery of such mail is a duplicate and leaves no contact behind (re-probe, session 16)", async () => {
    const count = async () =>
      Number(
        (
          await t.db.db.execute<{ n: number }>(
            sql`SELECT count(*)::int AS n FROM contact WHERE email LIKE 'unknown-%@invalid'`,
          )
        )[0]!.n,
      );
    const before = await count();
    const raw =
      "To: support@acme.test\r\nSubject: No sender\r\nMessage-ID: <nofrom-1@x.example>\r\n\r\nhi\r\n";
    expect((await ingest(raw)).status).toBe("stored");
    expect((await ingest(raw)).status).toBe("duplicate");
    expect((await ingest(raw)).status).toBe("duplicate");
    expect(await count()).toBe(before + 1);
  });
});

describe("delivery notices that are no RFC 3464 report", () => {
  const smtpFrom = (mailFrom: string): IngestSource => ({ kind: "smtp", mailFrom, rcptTo: [] });
  // No envelope, as over IMAP: the Return-Path field the delivering server wrote, if any,
  // is the reverse path (classify.ts `reversePath`).
  const noEnvelope = (): IngestSource => ({ kind: "api", userId: "00000000-0000-0000-0000-000000000000" });
  const postmasterMail = (messageId: string, headers: Record<string, string> = {}) =>
    buildRawMail({
      from: "postmaster@bigcustomer.example",
      to: "support@acme.test",
      subject: "Mail delivery failed for your invoices - please help",
      messageId,
      headers,
      text: "Hi, our users do not receive your invoices since Monday. Please check.",
    });
  const eximDelay = [
    "Return-Path: <>",
    "From: Mail Delivery System <Mailer-Daemon@mx.customer.example>",
    "To: support@acme.test",
    "Subject: Warning: message 1vAbCd-000123-4X delayed 24 hours",
    "Message-ID: <E1vAbCd-warn@mx.customer.example>",
    "Auto-Submitted: auto-replied",
    "",
    "This message was created automatically by mail delivery software.",
    "A message that you sent has not yet been delivered to one or more of its",
    "recipients after more than 24 hours on the queue on mx.customer.example.",
    "",
    "  slow@customer.example",
    "    Delay reason: SMTP error from remote mail server after RCPT TO:<slow@customer.example>:",
    "    451 4.7.1 Greylisted",
    "",
    "No action is required on your part.",
    "",
  ].join("\r\n");

  async function through(raw: Buffer | string, source: IngestSource) {
    return ingestRaw(
      t.app.engine,
      { tenantId: t.tenantId, addressId: addr.addressId },
      typeof raw === "string" ? Buffer.from(raw) : raw,
      { receivedAt: clock.now(), source },
    );
  }

  it.each([
    [
      "over SMTP, MAIL FROM:<postmaster@…>",
      "pm-smtp@bigcustomer.example",
      {},
      smtpFrom("postmaster@bigcustomer.example"),
    ],
    [
      "no envelope (IMAP), its Return-Path field",
      "pm-imap@bigcustomer.example",
      { "Return-Path": "<postmaster@bigcustomer.example>" },
      noEnvelope(),
    ],
    ["no envelope (IMAP), no Return-Path field", "pm-imap2@bigcustomer.example", {}, noEnvelope()],
  ] as const)(
    "a customer's postmaster with a delivery subject reaches agents (%s)",
    async (_name, mid, headers, source) => {
      const r = await through(postmasterMail(mid, headers), source);
      expect(r.status).toBe("stored");
      if (r.status !== "stored") return;
      const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, r.conversationId));
      expect(c!.status).toBe("NEW");
      expect(
        await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.messageIdHeader, mid)),
      ).toEqual([]);
    },
  );

  /** A customer's mail over SMTP and our reply to it, SENT, with the given Message-ID. */
  async function sentReplyTo(customer: string, subject: string, messageIdHeader: string) {
    const first = await through(buildRawMail({ from: customer, subject }), smtpFrom(customer));
    if (first.status !== "stored") throw new Error(first.status);
    const [out] = await t.db.db
      .insert(message)
      .values({
        tenantId: t.tenantId,
        conversationId: first.conversationId,
        direction: "OUTBOUND",
        messageIdHeader,
        to: [{ address: customer, name: "" }],
        subject: `Re: ${subject}`,
        receivedAt: clock.now(),
        outboundStatus: "SENT",
      })
      .returning();
    return out;
  }

  it("an Exim delay warning (MAIL FROM:<>, daemon From) is recorded as a delivery report, marking nothing", async () => {
    const before = (await t.db.db.select({ id: conversation.id }).from(conversation)).length;
    // Our reply to slow@, still SENT after the warning.
    const out = await sentReplyTo("slow@customer.example", "order", "out-delay@mail.acme.test");
    const withHeaders = eximDelay.replace(
      "No action is required on your part.\r\n",
      "No action is required on your part.\r\n\r\n------ This is a copy of the message's headers. ------\r\n\r\n" +
        "Return-path: <support@acme.test>\r\nMessage-ID: <out-delay@mail.acme.test>\r\n",
    );
    const r = await through(withHeaders, smtpFrom(""));
    expect(r.status).toBe("report");
    if (r.status !== "report") return;
    expect(r.bouncedMessageIds).toEqual([]);
    const [rej] = await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.id, r.rejectedId));
    expect(rej).toMatchObject({
      reason: "delivery_report",
      detail: "delayed; matched 0 outbound message(s)",
    });
    const [m] = await t.db.db.select().from(message).where(eq(message.id, out!.id));
    expect(m!.outboundStatus).toBe("SENT");
    expect((await t.db.db.select({ id: conversation.id }).from(conversation)).length).toBe(before + 1);
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.email, "slow@customer.example"));
    expect(ct!.undeliverable).toBe(false);
    expect(
      await t.db.db.select().from(contact).where(eq(contact.email, "mailer-daemon@mx.customer.example")),
    ).toEqual([]);
  });

  it("a delay warning marks nothing even when its text quotes a 5.x.x code", async () => {
    const out = await sentReplyTo("slower@customer.example", "order 2", "out-delay2@mail.acme.test");
    const raw = eximDelay
      .replace("E1vAbCd-warn@", "E1vAbCd-warn3@")
      .replaceAll("slow@", "slower@")
      .replace("451 4.7.1 Greylisted", "550 5.7.1 Try again later")
      .replace(
        "No action is required on your part.\r\n",
        "No action is required on your part.\r\n\r\n------ This is a copy of the message's headers. ------\r\n\r\n" +
          "Return-path: <support@acme.test>\r\nMessage-ID: <out-delay2@mail.acme.test>\r\n",
      );
    const r = await through(raw, smtpFrom(""));
    expect(r).toMatchObject({ status: "report", bouncedMessageIds: [] });
    const [m] = await t.db.db.select().from(message).where(eq(message.id, out!.id));
    expect(m!.outboundStatus).toBe("SENT");
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.email, "slower@customer.example"));
    expect(ct!.undeliverable).toBe(false);
  });

  it("the same warning without an envelope (IMAP: Return-Path: <> written by the server) is a report too", async () => {
    const r = await through(eximDelay.replace("E1vAbCd-warn@", "E1vAbCd-warn2@"), noEnvelope());
    expect(r.status).toBe("report");
  });
});

describe("Message-IDs with spaces (found by a fuzz probe)", () => {
  it("a stranger's reply naming another id with spaces does not join the conversation", async () => {
    // Both ids used to be stored and looked up as "@", so any two such mails were one thread.
    const a = await ingest(
      buildRawMail({ from: "Bob <bob@customer.example>", subject: "Private matter", messageId: "x y @ z" }),
    );
    const b = await ingest(
      buildRawMail({
        from: "Eve <eve@elsewhere.example>",
        subject: "Re: something else",
        messageId: "eve-1@elsewhere.example",
        headers: { "In-Reply-To": "<q r @ s>" },
      }),
    );
    expect([a.status, a.created, b.status, b.created]).toEqual(["stored", true, "stored", true]);
    const [m] = await t.db.db.select().from(message).where(eq(message.subject, "Private matter"));
    expect(m!.messageIdHeader).toBe("xy@z");
  });
});

describe("a batch in one transaction (ingestMessages, as an IMAP batch)", () => {
  it("shares each address's reads and still decides every message as if it were alone", async () => {
    const a = await createQueueWithAddress(t.db.db, t.tenantId, { address: "batch-a@acme.test" });
    const b = await createQueueWithAddress(t.db.db, t.tenantId, { address: "batch-b@acme.test" });
    // A rule on address A only: it must apply to each of A's new conversations in the batch.
    const rule = await t.ok(
      `mutation($input: CreateRuleInput!) { createRule(input: $input) { __typename } }`,
      {
        input: {
          addressId: encodeId("EmailAddress", a.addressId),
          name: "Urgent",
          conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "urgent" }],
          actions: [{ type: "SET_PRIORITY", priority: 7 }],
        },
      },
    );
    expect(rule.createRule.__typename).toBe("Rule");
    const ctx = t.app.engine;
    const input = async (to: typeof a, raw: Buffer): Promise<IngestInput> => ({
      tenantId: t.tenantId,
      addressId: to.addressId,
      raw,
      parsed: await ctx.mime.parse(raw),
      receivedAt: clock.now(),
      source: { kind: "api", userId: t.adminId },
    });
    const first = buildRawMail({
      to: a.address,
      subject: "urgent: batch one",
      messageId: "batch-1@customer.example",
    });
    const inputs = [
      await input(a, first),
      // A reply to the first, in the same batch: threads onto the conversation it opened.
      await input(
        a,
        buildRawMail({
          to: a.address,
          subject: "Re: urgent: batch one",
          messageId: "batch-2@customer.example",
          headers: { "In-Reply-To": "<batch-1@customer.example>" },
        }),
      ),
      await input(
        b,
        buildRawMail({ to: b.address, subject: "urgent for B", messageId: "batch-3@customer.example" }),
      ),
      // The same bytes as the first again: a duplicate of what the batch stored before it.
      await input(a, first),
      {
        ...(await input(a, Buffer.from("not a mail"))),
        parsed: { ok: false as const, reason: "unparseable" as const, detail: "test", sizeBytes: 10 },
      },
      await input(
        a,
        buildRawMail({ to: a.address, subject: "urgent again", messageId: "batch-4@customer.example" }),
      ),
    ];
    const results = await ingestMessages(ctx, inputs);
    expect(results.map((r) => r.status)).toEqual([
      "stored",
      "stored",
      "stored",
      "duplicate",
      "rejected",
      "stored",
    ]);
    const [r1, r2, r3, r4, , r6] = results as Extract<(typeof results)[number], { status: "stored" }>[];
    expect(r1).toMatchObject({ created: true, queueId: a.queueId });
    expect(r2).toMatchObject({ created: false, conversationId: r1!.conversationId });
    expect(r3).toMatchObject({ created: true, queueId: b.queueId });
    expect((r4 as unknown as { messageId: string }).messageId).toBe(r1!.messageId);
    expect(r6).toMatchObject({ created: true, queueId: a.queueId });
    const priorities = await t.db.db
      .select({ id: conversation.id, priority: conversation.priority })
      .from(conversation)
      .where(
        sql`${conversation.id} IN (${r1!.conversationId}, ${r3!.conversationId}, ${r6!.conversationId})`,
      );
    const byId = new Map(priorities.map((p) => [p.id, p.priority]));
    expect(byId.get(r1!.conversationId)).toBe(7);
    expect(byId.get(r6!.conversationId)).toBe(7);
    expect(byId.get(r3!.conversationId)).toBe(0); // B has no rule
    // New conversations draw their ticket numbers ahead of the batch's inserts, in message
    // order, and one sender is one contact however many of their mails the batch holds.
    expect(r1!.ticketNumber).toBeLessThan(r3!.ticketNumber);
    expect(r3!.ticketNumber).toBeLessThan(r6!.ticketNumber);
    const contacts = await t.db.db
      .select({ contactId: conversation.contactId })
      .from(conversation)
      .where(
        sql`${conversation.id} IN (${r1!.conversationId}, ${r3!.conversationId}, ${r6!.conversationId})`,
      );
    expect(new Set(contacts.map((c) => c.contactId)).size).toBe(1);
  });
});

describe("the real-world corpus", () => {
  const root = [join(process.cwd(), "../shared/corpus/mail-gem"), "/work/shared/corpus/mail-gem"].find(
    (p) => {
      try {
        return statSync(p).isDirectory();
      } catch {
        return false;
      }
    },
  );
  const files = root
    ? (function walk(d: string): string[] {
        return readdirSync(d).flatMap((n) =>
          statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith(".eml") ? [join(d, n)] : [],
        );
      })(root)
    : [];

  it("stores or rejects every file with a reason, none lost", { timeout: 120_000 }, async () => {
    expect(files.length).toBeGreaterThan(50);
    const corpusAddr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "corpus@acme.test" });
    const outcomes: Record<string, number> = {};
    for (const f of files) {
      const r = await t.ok(INGEST, {
        a: encodeId("EmailAddress", corpusAddr.addressId),
        raw: readFileSync(f).toString("base64"),
        b64: true,
      });
      const s = r.ingestRawMessage.status as string;
      outcomes[s] = (outcomes[s] ?? 0) + 1;
    }
    const stored = await t.db.db
      .select({ id: message.id })
      .from(message)
      .where(eq(message.addressId, corpusAddr.addressId));
    const rejected = await t.db.db
      .select({ id: rejectedMessage.id })
      .from(rejectedMessage)
      .where(eq(rejectedMessage.addressId, corpusAddr.addressId));
    // Every file is accounted for: a message, a rejection/report, or a duplicate of one.
    expect(stored.length + rejected.length + (outcomes.duplicate ?? 0)).toBe(files.length);
    expect(outcomes.stored ?? 0).toBeGreaterThan(files.length / 2);
  });
});

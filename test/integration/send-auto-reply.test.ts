import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  autoReplyTemplate,
  businessCalendar,
  contact,
  conversation,
  emailAddress,
  message,
  queue,
  rule,
  tenant,
} from "../../src/db/schema/index.js";
import { DAY, ManualClock } from "../../src/engine/clock.js";
import { decodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import {
  capturedWith,
  createSinkAccount,
  eventsOf,
  headerLines,
  ingestAt,
  parseCaptured,
  waitFor,
  waitForStatus,
} from "../helpers/outbound.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { type SmtpSink, startCapturingSink } from "../helpers/smtp-sinks.js";

// Monday 2 March 2026, 10:00 in Berlin.
const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;
let sink: SmtpSink;
let addr: { queueId: string; addressId: string; address: string };

async function newMail(spec: Parameters<typeof buildRawMail>[0]) {
  const r = await ingestAt(t, addr.addressId, buildRawMail(spec));
  expect(r.status).toBe("stored");
  return { ...r.conversation!, dbId: decodeId(r.conversation!.id, "Conversation") };
}

/** The auto-reply decision for one conversation: the n-th queued/suppressed event. */
async function decision(conversationId: string, n = 1) {
  return waitFor(async () => {
    const evs = (await eventsOf(t, conversationId)).filter((e) =>
      ["auto_reply.queued", "auto_reply.suppressed"].includes(e.type),
    );
    return evs.length >= n ? evs[n - 1]! : null;
  }, `auto-reply decision ${n} on ${conversationId}`);
}

async function autoReplyJobsFor(inboundMessageId: string): Promise<number> {
  const rows = await t.db.db.execute<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'auto-reply' AND data->>'messageId' = ${inboundMessageId}`,
  );
  return rows[0]!.n;
}

beforeAll(async () => {
  t = await startTestApp({ clock, env: { SEND_POLL_MS: "500", SEND_WORKERS: "1" } });
  sink = await startCapturingSink({ starttls: false });
  await t.db.db
    .update(tenant)
    .set({
      company: "ACME Corp",
      timeZone: "Europe/Berlin",
      messageIdDomain: "mail.acme.test",
      autoReplyLimitPerSender: 3,
      autoReplyLimitWindowMinutes: 120,
    })
    .where(eq(tenant.id, t.tenantId));
  const [cal] = await t.db.db
    .insert(businessCalendar)
    .values({
      tenantId: t.tenantId,
      name: "Office",
      timeZone: "Europe/Berlin",
      intervals: [1, 2, 3, 4, 5].map((d) => ({ weekday: d as 1, start: "09:00", end: "17:00" })),
      holidays: [{ date: "2026-03-03", name: "Closed" }],
    })
    .returning();
  const [tpl] = await t.db.db
    .insert(autoReplyTemplate)
    .values({
      tenantId: t.tenantId,
      name: "Ack",
      text: "consumer=@{consumer}|agent=@{agent}|date=@{date}|time=@{time}|queue=@{queue}|company=@{company}|next=@{next_working_date}|ticket=@{ticket_id}|unknown=@{nope}",
      html: "<p>Hello @{CONSUMER}, ticket @{ticket_id}</p>",
    })
    .returning();
  // The auto-reply sender lives on an outbound-only account.
  const outboundOnly = await createSinkAccount(t, sink, { kind: "OUTBOUND_ONLY" });
  const [bot] = await t.db.db
    .insert(emailAddress)
    .values({
      tenantId: t.tenantId,
      address: "robot@acme.test",
      name: "Robot",
      displayName: "ACME Robot",
      accountId: outboundOnly,
      outboundAllowed: false,
    })
    .returning();
  const accountId = await createSinkAccount(t, sink);
  addr = await createQueueWithAddress(t.db.db, t.tenantId, {
    address: "support@acme.test",
    queue: {
      name: "Support",
      calendarId: cal!.id,
      autoReplyTemplateId: tpl!.id,
      autoReplyOnNew: true,
      autoReplyOnClosed: true,
      autoReplyOnPaused: true,
      autoReplyOnIdle: true,
      autoReplyIdleDays: 15,
      autoReplyAddressId: bot!.id,
    },
    addressFields: { accountId, displayName: "ACME Support" },
  });
});

afterAll(async () => {
  await t?.stop();
  await sink?.close();
});

describe("auto-reply content", () => {
  it("answers the first mail from the queue's outbound-only sender with every tag rendered", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT", {
      name: "Ann Agent",
      alias: "Annie",
    });
    await t.db.db.insert(contact).values({
      tenantId: t.tenantId,
      email: "carla@customer.example",
      name: "Carla",
      preferredAgentId: agent.id,
    });
    const conv = await newMail({
      from: "Carla C <carla@customer.example>",
      subject: "Where is my order?",
      messageId: "order-1@customer.example",
    });
    const ev = await decision(conv.dbId);
    expect(ev.type).toBe("auto_reply.queued");
    expect(ev.payload).toMatchObject({ trigger: "NEW_CONVERSATION" });
    const id = (ev.payload as { messageId: string }).messageId;
    const sent = await waitForStatus(t, id, ["SENT", "FAILED"]);
    expect(sent.outboundStatus).toBe("SENT");
    expect(sent.isAutoReply).toBe(true);
    const captured = capturedWith(sink, sent.messageIdHeader);
    expect(captured.rcptTo).toEqual(["carla@customer.example"]);
    const mail = await parseCaptured(captured.raw);
    expect(mail.subject).toBe("Re: Where is my order?");
    expect(mail.headers.get("auto-submitted")).toBe("auto-replied");
    expect(mail.inReplyTo).toBe("<order-1@customer.example>");
    expect(mail.from?.value).toEqual([{ name: "ACME Robot", address: "robot@acme.test" }]);
    expect(mail.messageId).toMatch(/@mail\.acme\.test>$/);
    // 2026-03-03 is a holiday, so the next working date is Wednesday.
    expect(mail.text?.trim()).toBe(
      `consumer=Carla C|agent=Annie|date=2026-03-02|time=10:00|queue=Support|company=ACME Corp|next=2026-03-04|ticket=${conv.ticketNumber}|unknown=@{nope}`,
    );
    expect(mail.html).toContain(`<p>Hello Carla C, ticket ${conv.ticketNumber}</p>`);
    expect(headerLines(captured.raw)).toContain("X-Auto-Response-Suppress: All");
    const types = (await eventsOf(t, conv.dbId)).map((e) => e.type);
    expect(types).toContain("auto_reply.sent");
  });
});

describe("auto-reply chosen by a rule (SPEC §7)", () => {
  it("sends the rule's template for a new conversation even where the queue has none", async () => {
    const [ruleTpl] = await t.db.db
      .insert(autoReplyTemplate)
      .values({ tenantId: t.tenantId, name: "Billing ack", text: "Billing got ticket @{ticket_id}" })
      .returning();
    const accountId = await createSinkAccount(t, sink);
    const billing = await createQueueWithAddress(t.db.db, t.tenantId, {
      address: "billing@acme.test",
      queue: { name: "Billing" },
      addressFields: { accountId },
    });
    const [q] = await t.db.db.select().from(queue).where(eq(queue.id, billing.queueId));
    expect(q!.autoReplyTemplateId).toBeNull();
    await t.db.db.insert(rule).values({
      tenantId: t.tenantId,
      addressId: billing.addressId,
      name: "Ack invoices",
      position: 0,
      conditions: [{ field: "subject", op: "CONTAINS", value: "invoice" }],
      actions: [{ type: "SEND_AUTO_REPLY", templateId: ruleTpl!.id }],
    });
    const r = await ingestAt(
      t,
      billing.addressId,
      buildRawMail({
        from: "dora@customer.example",
        subject: "Invoice 12",
        messageId: "inv-12@customer.example",
      }),
    );
    const convId = decodeId(r.conversation!.id, "Conversation");
    const ev = await decision(convId);
    expect(ev.type).toBe("auto_reply.queued");
    const sent = await waitForStatus(t, (ev.payload as { messageId: string }).messageId, ["SENT", "FAILED"]);
    expect(sent.outboundStatus).toBe("SENT");
    const mail = await parseCaptured(capturedWith(sink, sent.messageIdHeader).raw);
    expect(mail.text?.trim()).toBe(`Billing got ticket ${r.conversation!.ticketNumber}`);
    expect(mail.from?.value[0]?.address).toBe("billing@acme.test");

    // A mail the rule does not match gets nothing: the queue itself has no auto-reply.
    const other = await ingestAt(
      t,
      billing.addressId,
      buildRawMail({
        from: "dora@customer.example",
        subject: "Hello",
        messageId: "hello-1@customer.example",
      }),
    );
    const [m] = await t.db.db
      .select({ id: message.id })
      .from(message)
      .where(eq(message.conversationId, decodeId(other.conversation!.id, "Conversation")));
    expect(await autoReplyJobsFor(m!.id)).toBe(0);
  });
});

describe("loop protection", () => {
  const cases: [string, Parameters<typeof buildRawMail>[0], string | null][] = [
    ["Auto-Submitted: auto-generated", { headers: { "Auto-Submitted": "auto-generated" } }, "AUTO_SUBMITTED"],
    ["Auto-Submitted: auto-replied", { headers: { "Auto-Submitted": "auto-replied" } }, "AUTO_SUBMITTED"],
    ["Auto-Submitted: no", { headers: { "Auto-Submitted": "no" } }, null],
    ["Precedence: bulk", { headers: { Precedence: "bulk" } }, "PRECEDENCE"],
    ["Precedence: list", { headers: { Precedence: "list" } }, "PRECEDENCE"],
    ["Precedence: junk", { headers: { Precedence: "junk" } }, "PRECEDENCE"],
    ["List-Id", { headers: { "List-Id": "<news.lists.example>" } }, "MAILING_LIST"],
    [
      "X-Auto-Response-Suppress",
      { headers: { "X-Auto-Response-Suppress": "OOF, AutoReply" } },
      "AUTO_RESPONSE_SUPPRESSED",
    ],
    ["MAILER-DAEMON", { from: "MAILER-DAEMON@mx.example.net" }, "SYSTEM_SENDER"],
    ["postmaster", { from: "postmaster@example.net" }, "SYSTEM_SENDER"],
    // A customer's postmaster with a delivery subject is ordinary mail now (not a delivery
    // report), and still never answered.
    [
      "postmaster with a delivery subject",
      {
        from: "postmaster@bigcustomer.example",
        subject: "Mail delivery failed for your invoices - please help",
        headers: { "Return-Path": "<postmaster@bigcustomer.example>" },
        text: "Hi, our users do not receive your invoices since Monday. Please check.",
      },
      "SYSTEM_SENDER",
    ],
    ["our own address", { from: "robot@acme.test" }, "OWN_ADDRESS"],
    ["our Message-ID domain as sender", { from: "x@mail.acme.test" }, "OWN_ADDRESS"],
    ["our own Message-ID", { messageId: "looped@mail.acme.test" }, "OWN_MESSAGE"],
  ];

  // Independent senders: the decisions run in parallel and each waits for its own event.
  it.concurrent.each(cases)("%s", async (name, spec = {}, reason) => {
    const sender = spec.from ?? `lp-${name.replace(/\W+/g, "-").toLowerCase()}@customer.example`;
    const conv = await newMail({ subject: `Loop ${name}`, ...spec, from: sender });
    const ev = await decision(conv.dbId);
    if (reason === null) {
      expect(ev.type).toBe("auto_reply.queued");
    } else {
      expect(ev.type).toBe("auto_reply.suppressed");
      expect(ev.payload).toMatchObject({ reason, trigger: "NEW_CONVERSATION" });
    }
  });

  it("a mail without a From is not answered", async () => {
    const raw = buildRawMail({ subject: "Anonymous" })
      .toString()
      .replace(/^From: .*\r\n/, "");
    const r = await ingestAt(t, addr.addressId, Buffer.from(raw));
    const ev = await decision(decodeId(r.conversation!.id, "Conversation"));
    expect(ev.payload).toMatchObject({ reason: "NO_SENDER" });
  });

  it("answers at most N auto-replies per sender per window, then suppresses with RATE_LIMITED", async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const conv = await newMail({ from: "chatty@customer.example", subject: `Chatty ${i}` });
      const ev = await decision(conv.dbId);
      outcomes.push(
        ev.type === "auto_reply.queued" ? "queued" : String((ev.payload as { reason: string }).reason),
      );
    }
    expect(outcomes).toEqual(["queued", "queued", "queued", "RATE_LIMITED"]);
    // After the window the sender is answered again.
    clock.advance(121 * 60_000);
    const later = await newMail({ from: "chatty@customer.example", subject: "Chatty later" });
    expect((await decision(later.dbId)).type).toBe("auto_reply.queued");
  });
});

describe("triggers", () => {
  async function reply(sender: string, inReplyTo: string, subject: string) {
    const r = await ingestAt(
      t,
      addr.addressId,
      buildRawMail({ from: sender, subject, headers: { "In-Reply-To": `<${inReplyTo}>` } }),
    );
    return r;
  }

  it("answers a reply to a CLOSED conversation (which reopens) and to a PAUSED one", async () => {
    const a = await newMail({
      from: "closer@customer.example",
      subject: "Closed one",
      messageId: "cl-1@customer.example",
    });
    await decision(a.dbId, 1);
    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", closedAt: clock.now(), workState: "DONE" })
      .where(eq(conversation.id, a.dbId));
    const r = await reply("closer@customer.example", "cl-1@customer.example", "Re: Closed one");
    expect(r.conversation).toMatchObject({ id: expect.any(String), status: "REOPENED" });
    expect((await decision(a.dbId, 2)).payload).toMatchObject({ trigger: "REPLY_TO_CLOSED" });

    const b = await newMail({
      from: "pauser@customer.example",
      subject: "Paused one",
      messageId: "pa-1@customer.example",
    });
    await decision(b.dbId, 1);
    await t.db.db.update(conversation).set({ status: "PAUSED" }).where(eq(conversation.id, b.dbId));
    await reply("pauser@customer.example", "pa-1@customer.example", "Re: Paused one");
    expect((await decision(b.dbId, 2)).payload).toMatchObject({ trigger: "REPLY_TO_PAUSED" });
  });

  it("answers a reply to an ACTIVE conversation idle for 15 days, not one idle for 3", async () => {
    const c = await newMail({
      from: "idler@customer.example",
      subject: "Idle one",
      messageId: "id-1@customer.example",
    });
    await decision(c.dbId, 1);
    await t.db.db
      .update(conversation)
      .set({ status: "ACTIVE", lastActivityAt: new Date(clock.now().getTime() - 3 * DAY) })
      .where(eq(conversation.id, c.dbId));
    await reply("idler@customer.example", "id-1@customer.example", "Re: Idle one");
    const [recent] = await t.db.db
      .select({ id: message.id })
      .from(message)
      .where(and(eq(message.conversationId, c.dbId), eq(message.direction, "INBOUND")))
      .orderBy(sql`${message.createdAt} DESC`)
      .limit(1);
    expect(await autoReplyJobsFor(recent!.id)).toBe(0);

    await t.db.db
      .update(conversation)
      .set({ status: "ACTIVE", lastActivityAt: new Date(clock.now().getTime() - 16 * DAY) })
      .where(eq(conversation.id, c.dbId));
    await reply("idler@customer.example", "id-1@customer.example", "Re: Idle one");
    expect((await decision(c.dbId, 2)).payload).toMatchObject({ trigger: "REPLY_TO_IDLE_ACTIVE" });
  });
});

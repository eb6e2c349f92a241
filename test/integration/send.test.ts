import { randomBytes, randomUUID } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LARGE_BYTEA_BYTES } from "../../src/db/fast.js";
import {
  attachment,
  brandedTemplate,
  contact,
  conversation,
  message,
  queueMember,
  rawMessage,
  signature,
  slaPolicy,
  tenant,
  user,
} from "../../src/db/schema/index.js";
import { ManualClock } from "../../src/engine/clock.js";
import { silentLogger } from "../../src/engine/context.js";
import {
  deliverMessage,
  giveUpOrphanedSends,
  orphanedSendingMinutes,
} from "../../src/engine/outbound/delivery.js";
import { SEND_MESSAGE_QUEUE, sendRetryPolicy } from "../../src/engine/outbound/store.js";
import {
  immediateSendHandler,
  rescueUnscheduledSends,
  sendBatchHandler,
  sendDeadLetterHandler,
  UNATTEMPTED_SEND_MINUTES,
} from "../../src/jobs/send-message.js";
import { decodeId, encodeId } from "../../src/schema/ids.js";
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
import { buildDeliveryReport, buildRawMail, eximFailureLines } from "../helpers/raw-mail.js";
import {
  type SmtpSink,
  startCapturingSink,
  startNoTlsSink,
  startRejectingSink,
  startTempFailSink,
} from "../helpers/smtp-sinks.js";

const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;
let sink: SmtpSink;
let addr: { queueId: string; addressId: string; address: string };
let other: { queueId: string; addressId: string; address: string };
let supervisor: { id: string; key: string };
let agent: { id: string; key: string };
const sinks: SmtpSink[] = [];

const RESULT = `__typename
  ... on Message { id direction outboundStatus subject messageIdHeader inReplyTo references
    to { address name } cc { address } bcc { address } }
  ... on Error { code message }
  ... on ValidationError { field }
  ... on ForbiddenError { permission }`;
const REPLY = `mutation($c: ID!, $i: OutboundMessageInput!, $all: Boolean) {
  replyToConversation(conversationId: $c, input: $i, replyAll: $all) { ${RESULT} } }`;
const FORWARD = `mutation($m: ID!, $i: OutboundMessageInput!) { forwardMessage(messageId: $m, input: $i) { ${RESULT} } }`;
const START = `mutation($i: StartConversationInput!) { startConversation(input: $i) { ${RESULT} } }`;
const NOTE = `mutation($c: ID!, $i: NoteInput!) { addNote(conversationId: $c, input: $i) { ${RESULT} } }`;
const RETRY = `mutation($m: ID!) { retryMessage(messageId: $m) { ${RESULT} } }`;

/** startConversation from the `other` address (unless the input names one), as `agent` unless told. */
async function start(input: Record<string, unknown>, key = agent.key) {
  const r = await t.ok(
    START,
    { i: { fromAddressId: encodeId("EmailAddress", other.addressId), ...input } },
    key,
  );
  return r.startConversation;
}

async function newAddress(s: SmtpSink, fields: Record<string, unknown> = {}, queueFields = {}) {
  const accountId = await createSinkAccount(t, s);
  return createQueueWithAddress(t.db.db, t.tenantId, {
    queue: queueFields,
    addressFields: { accountId, ...fields },
  });
}

async function inbound(address: { addressId: string }, spec: Parameters<typeof buildRawMail>[0] = {}) {
  const r = await ingestAt(t, address.addressId, buildRawMail(spec));
  expect(r.status).toBe("stored");
  return r.conversation!;
}

beforeAll(async () => {
  t = await startTestApp({
    clock,
    env: {
      SEND_RETRY_DELAY_SECONDS: "1",
      SEND_RETRY_BACKOFF: "false",
      SEND_RETRY_LIMIT: "3",
      SEND_POLL_MS: "500",
      SEND_WORKERS: "1",
    },
  });
  sink = await startCapturingSink({ starttls: false });
  sinks.push(sink);
  const [tpl] = await t.db.db
    .insert(brandedTemplate)
    .values({
      tenantId: t.tenantId,
      name: "Brand",
      html: '<html><body><div class="brand-frame">{{content}}</div><p>ACME footer</p></body></html>',
    })
    .returning();
  const [sig] = await t.db.db
    .insert(signature)
    .values({ tenantId: t.tenantId, name: "Q", text: "Cheers, {{agent.name}} ({{company}})" })
    .returning();
  await t.db.db
    .update(tenant)
    .set({ company: "ACME Corp", timeZone: "Europe/Berlin" })
    .where(eq(tenant.id, t.tenantId));
  addr = await newAddress(
    sink,
    {
      address: "support@acme.test",
      displayName: "ACME Support",
      fromAddress: "help@acme.test",
      replyTo: "desk@acme.test",
      bcc: ["audit@acme.test"],
      ticketPlacement: "END",
      ticketDelimiter: "SQUARE",
      signaturePolicy: "FIRST_REPLY",
      historyPolicy: "ALWAYS",
      brandedTemplateId: tpl!.id,
    },
    { signatureId: sig!.id },
  );
  other = await newAddress(sink, {
    address: "sales@acme.test",
    ticketPlacement: "START",
    ticketDelimiter: "CURLY",
  });
  supervisor = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR", { name: "Sue Supervisor" });
  agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT", { name: "Ann Agent" });
  await t.db.db.insert(queueMember).values([
    { tenantId: t.tenantId, queueId: addr.queueId, userId: agent.id },
    { tenantId: t.tenantId, queueId: other.queueId, userId: agent.id },
  ]);
});

afterAll(async () => {
  await t?.stop();
  for (const s of sinks) await s.close();
});

describe("reply end-to-end", () => {
  it("a reply meets the first-response SLA and starts the customer-response countdown", async () => {
    const [policy] = await t.db.db
      .insert(slaPolicy)
      .values({ tenantId: t.tenantId, name: "Reply SLA", firstResponseMinutes: 60 })
      .returning();
    const a = await newAddress(
      sink,
      { address: "sla-desk@acme.test" },
      { slaPolicyId: policy!.id, customerResponseCountdownMinutes: 60 },
    );
    await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: a.queueId, userId: agent.id });
    const conv = await inbound(a, { subject: "SLA please", messageId: "sla-reply@customer.example" });
    const SLA = `query($id: ID!) { node(id: $id) { ... on Conversation { sla { firstResponse { phase } } } } }`;
    expect((await t.ok(SLA, { id: conv.id })).node.sla.firstResponse.phase).toBe("RUNNING");
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "Looking into it." } }, agent.key);
    expect((await t.ok(SLA, { id: conv.id })).node.sla.firstResponse.phase).toBe("MET");
    // Let the send finish so the shared sink's count is settled for the tests after this one.
    await waitForStatus(t, decodeId(r.replyToConversation.id, "Message"), ["SENT", "FAILED"]);
    const jobs = await t.db.db.execute<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM pgboss.job WHERE data->>'conversationId' = ${decodeId(conv.id, "Conversation")}
          AND name LIKE '%countdown%'`,
    );
    expect(jobs[0]!.n).toBe(1);
  });

  it("sends a threaded, branded reply with signature, history, From/Reply-To/BCC from the address", async () => {
    const conv = await inbound(addr, {
      subject: "Printer broken",
      messageId: "in-1@customer.example",
      headers: { References: "<root@customer.example>" },
      text: "The printer shows error 42.",
    });
    const before = sink.messages.length;
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "We are on it." } }, agent.key);
    const m = r.replyToConversation;
    expect(m).toMatchObject({ __typename: "Message", direction: "OUTBOUND", outboundStatus: "QUEUED" });
    expect(m.subject).toBe(`Re: Printer broken [#${conv.ticketNumber}]`);
    expect(m.inReplyTo).toBe("in-1@customer.example");
    expect(m.references).toEqual(["root@customer.example", "in-1@customer.example"]);
    // An agent without SEE_BCC does not see the hidden BCC.
    expect(m.bcc).toEqual([]);

    const id = decodeId(m.id, "Message");
    const sent = await waitForStatus(t, id, ["SENT", "FAILED"]);
    expect(sent.outboundStatus).toBe("SENT");
    expect(sink.messages.length).toBe(before + 1);
    const captured = capturedWith(sink, sent.messageIdHeader);
    expect(captured.rcptTo.sort()).toEqual(["alice@customer.example", "audit@acme.test"]);
    expect(captured.mailFrom).toBe("help@acme.test");
    const stored = await t.db.db.select().from(message).where(eq(message.id, id));
    const mail = await parseCaptured(captured.raw);
    expect(mail.messageId).toBe(`<${stored[0]!.messageIdHeader}>`);
    expect(mail.messageId).toMatch(/@[0-9a-f-]{36}\.switchboard\.invalid>$/);
    expect(mail.inReplyTo).toBe("<in-1@customer.example>");
    expect(mail.references).toEqual(["<root@customer.example>", "<in-1@customer.example>"]);
    expect(mail.subject).toBe(`Re: Printer broken [#${conv.ticketNumber}]`);
    expect(mail.from?.value).toEqual([{ name: "ACME Support", address: "help@acme.test" }]);
    expect(mail.replyTo?.value.map((a) => a.address)).toEqual(["desk@acme.test"]);
    expect(headerLines(captured.raw).some((l) => /^bcc:/i.test(l))).toBe(false);
    expect(mail.text).toContain("We are on it.");
    expect(mail.text).toContain("-- \nCheers, Ann Agent (ACME Corp)");
    expect(mail.text).toMatch(
      /On 2024-05-01 12:00, Alice <alice@customer.example> wrote:\n> The printer shows error 42\./,
    );
    expect(mail.html).toContain('<div class="brand-frame">');
    expect(mail.html).toContain("ACME footer");
    expect(mail.html).toContain('<blockquote type="cite"');

    // A supervisor (SEE_BCC) sees the hidden BCC on the stored message.
    const seen = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { lastOutboundAt messages { edges { node { direction bcc { address } sentAt } } } } } }`,
      { id: conv.id },
      supervisor.key,
    );
    const out = seen.node.messages.edges.map((e: any) => e.node).find((x: any) => x.direction === "OUTBOUND");
    expect(out.bcc).toEqual([{ address: "audit@acme.test" }]);
    expect(out.sentAt).not.toBeNull();
    expect(seen.node.lastOutboundAt).not.toBeNull();
    const types = (await eventsOf(t, decodeId(conv.id, "Conversation"))).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["message.queued", "message.sent"]));

    // Second reply: one Re:, no signature (FIRST_REPLY), still threaded on the newest message.
    const r2 = await t.ok(
      REPLY,
      { c: conv.id, i: { html: "<p>Fixed now.</p><script>x()</script>" } },
      agent.key,
    );
    const id2 = decodeId(r2.replyToConversation.id, "Message");
    const sent2 = await waitForStatus(t, id2, ["SENT"]);
    const mail2 = await parseCaptured(capturedWith(sink, sent2.messageIdHeader).raw);
    expect(mail2.subject).toBe(`Re: Printer broken [#${conv.ticketNumber}]`);
    // The signature is not added again (the quoted first reply still carries its own).
    expect(mail2.text!.split(" wrote:")[0]).not.toContain("Cheers,");
    expect(mail2.html).not.toContain("<script");
    expect(mail2.text).toContain("Fixed now.");
  });

  it("reply-all copies To/Cc minus our own addresses; forward goes to new recipients", async () => {
    const conv = await inbound(addr, {
      to: "support@acme.test, bob@customer.example",
      headers: { Cc: "carol@customer.example" },
      subject: "Team question",
    });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "Answer for all." }, all: true }, agent.key);
    expect(r.replyToConversation.to.map((a: any) => a.address)).toEqual(["alice@customer.example"]);
    expect(r.replyToConversation.cc.map((a: any) => a.address).sort()).toEqual([
      "bob@customer.example",
      "carol@customer.example",
    ]);
    const msgs = await t.db.db
      .select()
      .from(message)
      .where(
        and(eq(message.conversationId, decodeId(conv.id, "Conversation")), eq(message.direction, "INBOUND")),
      );
    const f = await t.ok(
      FORWARD,
      {
        m: encodeId("Message", msgs[0]!.id),
        i: { to: [{ address: "vendor@partner.example", name: "Vendor" }], text: "FYI" },
      },
      agent.key,
    );
    expect(f.forwardMessage.subject).toBe(`Fwd: Team question [#${conv.ticketNumber}]`);
    expect(f.forwardMessage.inReplyTo).toBeNull();
    const id = decodeId(f.forwardMessage.id, "Message");
    await waitForStatus(t, id, ["SENT"]);
    const fwd = sink.messages.find((x) => x.rcptTo.includes("vendor@partner.example"))!;
    const mail = await parseCaptured(fwd.raw);
    expect(mail.text).toContain("---------- Forwarded message ----------");
    expect(mail.to && !Array.isArray(mail.to) ? mail.to.value[0]!.address : null).toBe(
      "vendor@partner.example",
    );
  });

  it("starts a new outbound conversation with a ticket number; notes are never sent", async () => {
    const m = await start({
      to: [{ address: "newcustomer@example.org", name: "New Customer" }],
      subject: "Your quote",
      text: "Here is the quote.",
      attachments: [
        {
          filename: "quote.pdf",
          contentType: "application/pdf",
          contentBase64: Buffer.from("%PDF-1.4").toString("base64"),
        },
      ],
    });
    expect(m.subject).toMatch(/^\{#\d+\} Your quote$/);
    const id = decodeId(m.id, "Message");
    await waitForStatus(t, id, ["SENT"]);
    const [row] = await t.db.db.select().from(message).where(eq(message.id, id));
    const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, row!.conversationId));
    expect(m.subject).toBe(`{#${c!.ticketNumber}} Your quote`);
    // The author works it: assigned, and ACTIVE (the agent had nothing ACTIVE before).
    expect(c!.assigneeId).toBe(agent.id);
    expect(c!.workState).toBe("ACTIVE");
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.id, c!.contactId));
    expect(ct!.email).toBe("newcustomer@example.org");
    const mail = await parseCaptured(
      sink.messages.find((x) => x.rcptTo.includes("newcustomer@example.org"))!.raw,
    );
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.content.toString()])).toEqual([
      ["quote.pdf", "application/pdf", "%PDF-1.4"],
    ]);

    const n = await t.ok(
      NOTE,
      { c: encodeId("Conversation", c!.id), i: { text: "Customer is VIP" } },
      agent.key,
    );
    expect(n.addNote).toMatchObject({ direction: "NOTE", outboundStatus: null });
    // Nothing was queued for sending besides the first message (the note's own commit is
    // done, so a send job for it would be there now; the first message's job may already
    // be deleted, its immediate attempt having sent it).
    const jobs = await t.db.db.execute<{ message: string }>(
      sql`SELECT j.data->>'messageId' AS message FROM pgboss.job j
          JOIN message m ON m.id = (j.data->>'messageId')::uuid
          WHERE j.name = ${SEND_MESSAGE_QUEUE} AND m.conversation_id = ${c!.id}`,
    );
    expect(jobs.map((j) => j.message).filter((m) => m !== id)).toEqual([]);
    const [outbound] = await t.db.db.execute<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM message WHERE conversation_id = ${c!.id} AND outbound_status IS NOT NULL`,
    );
    expect(outbound!.n).toBe(1);
    const types = (await eventsOf(t, c!.id)).map((e) => e.type);
    expect(types).toContain("note.added");
  });

  it("stores and sends an attachment over 1 MB byte for byte (written to the database in parts)", async () => {
    const content = randomBytes(LARGE_BYTEA_BYTES + 50_000);
    const started = await start({
      to: [{ address: "bigfile@example.org", name: "Big" }],
      subject: "Large file",
      text: "Attached.",
      attachments: [
        {
          filename: "big.bin",
          contentType: "application/octet-stream",
          contentBase64: content.toString("base64"),
        },
      ],
    });
    const id = decodeId(started.id, "Message");
    await waitForStatus(t, id, ["SENT"]);
    const [row] = await t.db.db.select().from(message).where(eq(message.id, id));
    const [stored] = await t.db.db.select().from(rawMessage).where(eq(rawMessage.id, row!.rawMessageId!));
    expect(stored!.data.length).toBeGreaterThan(LARGE_BYTEA_BYTES);
    expect(stored!.data.length).toBe(stored!.sizeBytes);
    const [att] = await t.db.db.select().from(attachment).where(eq(attachment.messageId, id));
    expect(att!.data.equals(content)).toBe(true);
    const sent = sink.messages.find((x) => x.rcptTo.includes("bigfile@example.org"))!;
    expect(stored!.data.equals(sent.raw)).toBe(true);
    const mail = await parseCaptured(sent.raw);
    expect(mail.attachments[0]!.content.equals(content)).toBe(true);
  });

  it("another new outbound conversation lands PARKED in the author's working set", async () => {
    const startTo = async (to: string) => {
      const started = await start({
        to: [{ address: to, name: "" }],
        subject: "Following up",
        text: "Hello again.",
      });
      const [row] = await t.db.db
        .select({ conversationId: message.conversationId })
        .from(message)
        .where(eq(message.id, decodeId(started.id, "Message")));
      const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, row!.conversationId));
      return c!;
    };
    // The previous test's conversation is the agent's ACTIVE one; starting more does not
    // take it away (one ACTIVE per agent, the new ones wait PARKED in the working set).
    const [activeBefore] = await t.db.db
      .select({ id: conversation.id })
      .from(conversation)
      .where(and(eq(conversation.assigneeId, agent.id), eq(conversation.workState, "ACTIVE")));
    expect(activeBefore).toBeDefined();
    const first = await startTo("first-out@example.org");
    expect(first.assigneeId).toBe(agent.id);
    expect(first.assignedAt).not.toBeNull();
    expect(first.workState).toBe("PARKED");
    const assigned = await eventsOf(t, first.id, "routing.assigned");
    expect(assigned).toHaveLength(1);
    expect(assigned[0]!.agentId).toBe(agent.id);
    expect(assigned[0]!.payload).toMatchObject({ mode: "OUTBOUND" });
    const active = await t.db.db
      .select({ id: conversation.id })
      .from(conversation)
      .where(and(eq(conversation.assigneeId, agent.id), eq(conversation.workState, "ACTIVE")));
    expect(active.map((a) => a.id)).toEqual([activeBefore!.id]);
  });
});

describe("permissions", () => {
  it("refuses a new outbound conversation without START_OUTBOUND", async () => {
    const [tn] = await t.db.db.select().from(tenant).where(eq(tenant.id, t.tenantId));
    const perms = tn!.rolePermissions;
    await t.db.db
      .update(tenant)
      .set({ rolePermissions: { ...perms, AGENT: perms.AGENT.filter((p) => p !== "START_OUTBOUND") } })
      .where(eq(tenant.id, t.tenantId));
    try {
      const r = await t.ok(
        START,
        {
          i: {
            fromAddressId: encodeId("EmailAddress", other.addressId),
            to: [{ address: "x@example.org" }],
            subject: "Hi",
            text: "Hi",
          },
        },
        agent.key,
      );
      expect(r.startConversation).toMatchObject({
        __typename: "ForbiddenError",
        permission: "START_OUTBOUND",
      });
    } finally {
      await t.db.db.update(tenant).set({ rolePermissions: perms }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("refuses a subject edit unless the tenant allows it and the viewer has EDIT_SUBJECT", async () => {
    const conv = await inbound(addr, { subject: "Original" });
    const notAllowed = await t.ok(
      REPLY,
      { c: conv.id, i: { text: "x", subject: "New subject" } },
      supervisor.key,
    );
    expect(notAllowed.replyToConversation).toMatchObject({
      __typename: "ValidationError",
      field: "subjectOverride",
    });
    await t.db.db.update(tenant).set({ agentsMayEditSubject: true }).where(eq(tenant.id, t.tenantId));
    try {
      const noPerm = await t.ok(REPLY, { c: conv.id, i: { text: "x", subject: "New subject" } }, agent.key);
      expect(noPerm.replyToConversation).toMatchObject({
        __typename: "ForbiddenError",
        permission: "EDIT_SUBJECT",
      });
      const ok = await t.ok(REPLY, { c: conv.id, i: { text: "x", subject: "New subject" } }, supervisor.key);
      expect(ok.replyToConversation.subject).toBe(`New subject [#${conv.ticketNumber}]`);
    } finally {
      await t.db.db.update(tenant).set({ agentsMayEditSubject: false }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("refuses another From address without CHANGE_FROM, and addresses that may not send", async () => {
    const conv = await inbound(addr, { subject: "From test" });
    const r = await t.ok(
      REPLY,
      { c: conv.id, i: { text: "x", fromAddressId: encodeId("EmailAddress", other.addressId) } },
      agent.key,
    );
    expect(r.replyToConversation).toMatchObject({ __typename: "ForbiddenError", permission: "CHANGE_FROM" });
    const ok = await t.ok(
      REPLY,
      { c: conv.id, i: { text: "x", fromAddressId: encodeId("EmailAddress", other.addressId) } },
      supervisor.key,
    );
    expect(ok.replyToConversation.__typename).toBe("Message");
    const blocked = await newAddress(sink, { outboundAllowed: false });
    const no = await t.ok(
      REPLY,
      { c: conv.id, i: { text: "x", fromAddressId: encodeId("EmailAddress", blocked.addressId) } },
      supervisor.key,
    );
    expect(no.replyToConversation).toMatchObject({ __typename: "ValidationError", field: "fromAddressId" });
  });

  it("hides conversations outside the agent's queues", async () => {
    const hidden = await createQueueWithAddress(t.db.db, t.tenantId, {});
    const conv = await inbound(hidden, { subject: "Secret" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "x" } }, agent.key);
    expect(r.replyToConversation.__typename).toBe("NotFoundError");
  });

  it("lets an agent reply to what they own in a queue they cannot see (the visibility rule's other half)", async () => {
    // replyContext (outbound/reads.ts) writes visibility() of conversations.ts in SQL: both
    // halves are checked here so the two stay in step.
    const hidden = await newAddress(sink); // a new queue: not one of the agent's
    const conv = await inbound(hidden, { subject: "Handed over" });
    const id = decodeId(conv.id, "Conversation");
    for (const owner of [{ offeredToId: agent.id }, { assigneeId: agent.id, offeredToId: null }]) {
      await t.db.db.update(conversation).set(owner).where(eq(conversation.id, id));
      const r = await t.ok(REPLY, { c: conv.id, i: { text: "On it." } }, agent.key);
      expect(r.replyToConversation).toMatchObject({ __typename: "Message" });
      // Settled before the next test, which shares the sink.
      await waitForStatus(t, decodeId(r.replyToConversation.id, "Message"), ["SENT", "FAILED"]);
    }
  });
});

describe("delivery outcomes", () => {
  it("force-TLS against a server without TLS: FAILED, recipient undeliverable, event", async () => {
    const noTls = await startNoTlsSink();
    sinks.push(noTls);
    const a = await newAddress(noTls, { forceTls: true });
    const conv = await inbound(a, { from: "Tess <tess@plain.example>", subject: "TLS?" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "secret" } }, supervisor.key);
    const m = await waitForStatus(t, decodeId(r.replyToConversation.id, "Message"), ["FAILED", "SENT"]);
    expect(m.outboundStatus).toBe("FAILED");
    expect(m.outboundError).toMatch(/^tls_required/);
    expect(noTls.messages).toHaveLength(0);
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.email, "tess@plain.example"));
    expect(ct!.undeliverable).toBe(true);
    const failed = await eventsOf(t, decodeId(conv.id, "Conversation"), "message.failed");
    expect(failed[0]!.payload).toMatchObject({ kind: "tls_required" });
  });

  it("temporary failures are retried by pg-boss and the mail is sent exactly once", async () => {
    const flaky = await startTempFailSink(2);
    sinks.push(flaky);
    const a = await newAddress(flaky);
    const conv = await inbound(a, { subject: "Flaky" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "retry me" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const m = await waitForStatus(t, id, ["SENT", "FAILED"], 25_000);
    expect(m.outboundStatus).toBe("SENT");
    expect(m.sendAttempts).toBe(3);
    expect(flaky.attempts).toBe(3);
    expect(flaky.messages).toHaveLength(1);
    // A duplicate job after the recorded success sends nothing.
    const again = await deliverMessage(
      t.app.engine,
      { tenantId: t.tenantId, messageId: id },
      { finalAttempt: true },
    );
    expect(again.outcome).toBe("skipped");
    expect(flaky.messages).toHaveLength(1);
    expect(await eventsOf(t, decodeId(conv.id, "Conversation"), "message.sent")).toHaveLength(1);
  });

  it("a fresh SENDING claim is never taken twice; a stale one (crashed worker) is re-sent", async () => {
    const conv = await inbound(addr, { subject: "Claim" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "claim" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const sent = await waitForStatus(t, id, ["SENT"]);
    const count = () =>
      sink.messages.filter((m) => headerLines(m.raw).includes(`Message-ID: <${sent.messageIdHeader}>`))
        .length;
    expect(count()).toBe(1);
    const job = { tenantId: t.tenantId, messageId: id };
    await t.db.db.update(message).set({ outboundStatus: "SENDING" }).where(eq(message.id, id));
    expect((await deliverMessage(t.app.engine, job, { finalAttempt: false })).outcome).toBe("busy");
    expect(count()).toBe(1);
    await t.db.db.execute(
      sql`UPDATE message SET updated_at = now() - interval '11 minutes' WHERE id = ${id}`,
    );
    expect((await deliverMessage(t.app.engine, job, { finalAttempt: false })).outcome).toBe("sent");
    expect(count()).toBe(2);
  });

  /**
   * A queue of our own with the real handler: the app's workers do not serve it, so the
   * test fetches each attempt itself and drives the retry by making the job due (SQL).
   */
  async function handlerQueue(name: string, options: { retryLimit: number; deadLetter?: string }) {
    const boss = t.app.jobs.boss;
    if (options.deadLetter) await boss.createQueue(options.deadLetter, { name: options.deadLetter });
    await boss.createQueue(name, { name, retryDelay: 60, retryBackoff: true, ...options });
    const handler = sendBatchHandler(t.app.engine, boss, name, silentLogger);
    return {
      send: async (data: { tenantId: string; messageId: string }) => (await boss.send(name, data))!,
      /** Makes retries due now, fetches what is due and runs the handler on it. */
      attempt: async () => {
        await t.db.db.execute(sql`UPDATE pgboss.job SET start_after = now() WHERE name = ${name}`);
        const jobs = await boss.fetch<{ tenantId: string; messageId: string }>(name, {
          batchSize: 10,
          includeMetadata: true,
        });
        await handler(jobs);
        // What boss.work does after the handler: complete the batch (jobs the handler
        // failed are no longer active and stay as they are).
        if (jobs.length > 0)
          await boss.complete(
            name,
            jobs.map((j) => j.id),
          );
        return jobs.length;
      },
      job: async (id: string) => (await boss.getJobById(name, id))!,
    };
  }

  /** A reply delivered by the app, then put back in the state a test needs (SQL). */
  /**
   * Back to QUEUED, with a real database error at the record step: a trigger refusing
   * this message's SENT. Returns what drops the trigger again.
   */
  async function requeueRefusingSent(id: string): Promise<() => Promise<unknown>> {
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'QUEUED', sent_at = NULL WHERE id = ${id}`,
    );
    await t.db.db.execute(
      sql.raw(`
      CREATE FUNCTION refuse_sent_test() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'record refused (test)'; END $$;
      CREATE TRIGGER refuse_sent_test BEFORE UPDATE ON message FOR EACH ROW
        WHEN (NEW.outbound_status = 'SENT' AND NEW.id = '${id}'::uuid) EXECUTE FUNCTION refuse_sent_test();`),
    );
    return () =>
      t.db.db.execute(sql.raw("DROP TRIGGER refuse_sent_test ON message; DROP FUNCTION refuse_sent_test();"));
  }

  /**
   * The job's next attempt records the acceptance an earlier attempt could not: completed,
   * SENT at the acceptance time, no copy sent beyond the two the test made.
   */
  async function expectRecordedOnce(
    q: Awaited<ReturnType<typeof handlerQueue>>,
    jobId: string,
    m: Awaited<ReturnType<typeof deliveredReply>>,
    acceptedAt: string,
  ) {
    expect(await q.attempt()).toBe(1);
    expect((await q.job(jobId)).state).toBe("completed");
    expect(m.copies()).toBe(2);
    const [row] = await t.db.db.select().from(message).where(eq(message.id, m.id));
    expect(row!.outboundStatus).toBe("SENT");
    expect(row!.sentAt!.toISOString()).toBe(acceptedAt);
    return row!;
  }

  async function deliveredReply(subject: string) {
    const conv = await inbound(addr, { subject });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: subject } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const m = await waitForStatus(t, id, ["SENT"]);
    const copies = () =>
      sink.messages.filter((x) => headerLines(x.raw).includes(`Message-ID: <${m.messageIdHeader}>`)).length;
    return { id, conversationId: decodeId(conv.id, "Conversation"), copies, attempts: m.sendAttempts };
  }

  it("the first attempt runs right after the commit with no job; a send no process attempted is rescued by one", async () => {
    const jobsFor = async (messageId: string) =>
      (
        await t.db.db.execute<{ n: number }>(
          sql`SELECT count(*)::int AS n FROM pgboss.job WHERE data->>'messageId' = ${messageId}`,
        )
      )[0]!.n;
    const conv = await inbound(addr, { subject: "Immediate" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "now" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const m = await waitForStatus(t, id, ["SENT", "FAILED"]);
    expect(m.outboundStatus).toBe("SENT");
    expect(m.sendAttempts).toBe(1);
    expect(await jobsFor(id)).toBe(0);
    expect(await eventsOf(t, decodeId(conv.id, "Conversation"), "message.sent")).toHaveLength(1);

    // A process that stops between the commit and the first attempt: the message stays
    // QUEUED with no job until the rescue sweep gives it one.
    const schedule = (data: { tenantId: string; messageId: string }) =>
      t.app.jobs.schedule(SEND_MESSAGE_QUEUE, { ...data }, { retryLimit: 2, retryDelaySeconds: 1 });
    const handedOver: unknown[] = [];
    t.app.jobs.setImmediateHandler(SEND_MESSAGE_QUEUE, {
      run: (work) => {
        handedOver.push(...work);
      },
      drain: async () => {},
      stop: async () => {},
    });
    try {
      const r2 = await t.ok(REPLY, { c: conv.id, i: { text: "later" } }, supervisor.key);
      const id2 = decodeId(r2.replyToConversation.id, "Message");
      expect(handedOver).toEqual([{ tenantId: t.tenantId, messageId: id2 }]);
      expect(await jobsFor(id2)).toBe(0);
      const rescued = () => rescueUnscheduledSends(t.app.engine, schedule);
      // Too young to be given up on by its process.
      expect(await rescued()).toBe(0);
      await t.db.db.execute(
        sql`UPDATE message SET updated_at = now() - make_interval(mins => ${UNATTEMPTED_SEND_MINUTES + 1}) WHERE id = ${id2}`,
      );
      expect(await rescued()).toBe(1);
      expect(await jobsFor(id2)).toBe(1);
      // A job is pending: not scheduled twice.
      expect(await rescued()).toBe(0);
      const m2 = await waitForStatus(t, id2, ["SENT", "FAILED"]);
      expect(m2.outboundStatus).toBe("SENT");
      expect(m2.sendAttempts).toBe(1);
      expect(await eventsOf(t, decodeId(conv.id, "Conversation"), "message.sent")).toHaveLength(2);
    } finally {
      t.app.jobs.setImmediateHandler(
        SEND_MESSAGE_QUEUE,
        immediateSendHandler(t.app.engine, schedule, { workers: 2, batchSize: 20 }, silentLogger),
      );
    }
  });

  it("a stopping process hands the sends it has not started to jobs, which any instance runs", async () => {
    // Queued as a reply would be, but not handed to the app's handler: messages reset to
    // QUEUED after a first delivery stand in for freshly committed ones.
    const ms = [await deliveredReply("Stop 1"), await deliveredReply("Stop 2")];
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'QUEUED', sent_at = NULL
          WHERE id IN (${ms[0]!.id}, ${ms[1]!.id})`,
    );
    const scheduled: { data: unknown; delay: number }[] = [];
    const handler = immediateSendHandler(
      t.app.engine,
      async (data, delay) => {
        scheduled.push({ data, delay });
        return t.app.jobs.schedule(SEND_MESSAGE_QUEUE, { ...data }, { retryLimit: 2, retryDelaySeconds: 1 });
      },
      { workers: 1, batchSize: 1 },
      silentLogger,
    );
    handler.run(ms.map((m) => ({ tenantId: t.tenantId, messageId: m.id })));
    // Stopped before its first batch started: both become jobs due now, nothing is sent here.
    await handler.stop();
    expect(scheduled).toEqual(ms.map((m) => ({ data: { tenantId: t.tenantId, messageId: m.id }, delay: 0 })));
    for (const m of ms) {
      const row = await waitForStatus(t, m.id, ["SENT", "FAILED"]);
      expect(row.outboundStatus).toBe("SENT");
      expect(m.copies()).toBe(2);
    }
  });

  it("an immediate attempt whose SENT record fails schedules a job carrying the acceptance, which records it without sending again", async () => {
    const q = await handlerQueue("send-test-immediate", { retryLimit: 5 });
    const boss = t.app.jobs.boss;
    const handler = immediateSendHandler(
      t.app.engine,
      (data) => boss.send("send-test-immediate", data),
      { workers: 2, batchSize: 10 },
      silentLogger,
    );
    const m = await deliveredReply("Immediate unrecorded");
    const acceptedAt = clock.now().toISOString();
    const allowSent = await requeueRefusingSent(m.id);
    // And a message already SENT: nothing to do, no job.
    const done = await deliveredReply("Immediate skipped");
    let jobId: string;
    try {
      handler.run([
        { tenantId: t.tenantId, messageId: m.id },
        { tenantId: t.tenantId, messageId: done.id },
      ]);
      await handler.drain();
      expect(m.copies()).toBe(2);
      expect(done.copies()).toBe(1);
      const [row] = await t.db.db.select().from(message).where(eq(message.id, m.id));
      expect(row!.outboundStatus).toBe("SENDING");
      const jobs = await t.db.db.execute<{ id: string; data: Record<string, unknown> }>(
        sql`SELECT id, data FROM pgboss.job WHERE name = 'send-test-immediate'`,
      );
      expect(jobs.map((j) => j.data)).toEqual([
        {
          tenantId: t.tenantId,
          messageId: m.id,
          accepted: expect.objectContaining({
            at: acceptedAt,
            accepted: expect.arrayContaining(["alice@customer.example"]),
          }),
        },
      ]);
      jobId = jobs[0]!.id;
    } finally {
      await allowSent();
    }
    // The job records the acceptance and sends nothing.
    await expectRecordedOnce(q, jobId, m, acceptedAt);
  });

  it("a job whose message a crashed attempt left SENDING is retried, not completed, and takes it over once stale", async () => {
    const q = await handlerQueue("send-test-crashed", { retryLimit: 5 });
    const stuck = await deliveredReply("Crashed batch");
    const done = await deliveredReply("Already sent");
    expect(stuck.copies()).toBe(1);
    // The state a batch leaves when it dies between claim and record: SENDING, claimed now.
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'SENDING', updated_at = now() WHERE id = ${stuck.id}`,
    );
    const stuckJob = await q.send({ tenantId: t.tenantId, messageId: stuck.id });
    const sentJob = await q.send({ tenantId: t.tenantId, messageId: done.id });
    const unknownJob = await q.send({ tenantId: t.tenantId, messageId: randomUUID() });
    const foreignJob = await q.send({ tenantId: randomUUID(), messageId: stuck.id });
    expect(await q.attempt()).toBe(4);
    // Retried with backoff while the claim is fresh: nothing sent, the message untouched.
    expect((await q.job(stuckJob)).state).toBe("retry");
    expect((await q.job(stuckJob)).output).toMatchObject({ error: expect.stringMatching(/stale/) });
    const [still] = await t.db.db.select().from(message).where(eq(message.id, stuck.id));
    expect(still!.outboundStatus).toBe("SENDING");
    expect(stuck.copies()).toBe(1);
    // Already SENT (at most once), unknown, another tenant's: complete without sending.
    for (const j of [sentJob, unknownJob, foreignJob]) expect((await q.job(j)).state).toBe("completed");
    expect(done.copies()).toBe(1);
    // Still fresh on the next retry: failed again.
    expect(await q.attempt()).toBe(1);
    expect((await q.job(stuckJob)).state).toBe("retry");
    // Once the claim is stale a retry takes the message over and records it.
    await t.db.db.execute(
      sql`UPDATE message SET updated_at = now() - interval '11 minutes' WHERE id = ${stuck.id}`,
    );
    expect(await q.attempt()).toBe(1);
    expect((await q.job(stuckJob)).state).toBe("completed");
    const [after] = await t.db.db.select().from(message).where(eq(message.id, stuck.id));
    expect(after!.outboundStatus).toBe("SENT");
    expect(after!.sendAttempts).toBe(stuck.attempts + 1);
    // The documented at-least-once case: a crash after the server had accepted the first copy.
    expect(stuck.copies()).toBe(2);
  });

  it("a claim that never goes stale within the retries is given up visibly: FAILED with an event", async () => {
    const q = await handlerQueue("send-test-giveup", { retryLimit: 0, deadLetter: "send-test-giveup-dead" });
    const stuck = await deliveredReply("Never stale");
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'SENDING', updated_at = now() WHERE id = ${stuck.id}`,
    );
    const jobId = await q.send({ tenantId: t.tenantId, messageId: stuck.id });
    expect(await q.attempt()).toBe(1);
    expect((await q.job(jobId)).state).toBe("failed");
    const boss = t.app.jobs.boss;
    const dead = await boss.fetch<{ tenantId: string; messageId: string }>("send-test-giveup-dead", {
      includeMetadata: true,
    });
    expect(dead.map((j) => j.data.messageId)).toEqual([stuck.id]);
    await sendDeadLetterHandler(t.app.engine, silentLogger)(dead);
    const [m] = await t.db.db.select().from(message).where(eq(message.id, stuck.id));
    expect(m!.outboundStatus).toBe("FAILED");
    expect(m!.outboundError).toMatch(/^gave up after/);
    const failed = await eventsOf(t, stuck.conversationId, "message.failed");
    expect(failed.map((e) => e.payload)).toEqual([expect.objectContaining({ messageId: stuck.id })]);
    expect(stuck.copies()).toBe(1);
  });

  it("the dead letter records an acceptance carried in the job's data (an immediate attempt's) instead of failing the send", async () => {
    const m = await deliveredReply("Dead letter, accepted");
    // What an immediate attempt leaves when the relay accepted but SENT could not be
    // recorded: the row SENDING, the acceptance in the data of the job it scheduled. The
    // job then expired (its worker died), so it reached the dead letter with no output.
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'SENDING', sent_at = NULL WHERE id = ${m.id}`,
    );
    const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5)).toISOString();
    const job = {
      id: randomUUID(),
      data: {
        tenantId: t.tenantId,
        messageId: m.id,
        accepted: {
          at,
          response: "250 ok",
          accepted: ["alice@customer.example"],
          rejected: [],
          rejectedRecipients: [],
        },
      },
      output: null,
    };
    await sendDeadLetterHandler(t.app.engine, silentLogger)([job as never]);
    const [row] = await t.db.db.select().from(message).where(eq(message.id, m.id));
    expect(row!.outboundStatus).toBe("SENT");
    expect(row!.sentAt!.toISOString()).toBe(at);
    expect(m.copies()).toBe(1);
  });

  it("the sweep gives up a send left SENDING past every retry a job could still make (FAILED, event), and nothing younger or recorded", async () => {
    const orphan = await deliveredReply("Orphaned send");
    const young = await deliveredReply("Claimed just inside the threshold");
    const sent = await deliveredReply("Sent long ago");
    // The threshold follows the app's retry policy: past it no job comes back for the message.
    const minutes = orphanedSendingMinutes(sendRetryPolicy(t.app.engine));
    // Longest backoffs (pg-boss: up to delay × 2^retry) + job expiry 15 + staleness 10, × 1.25.
    expect(orphanedSendingMinutes({ limit: 5, delaySeconds: 60, backoff: true })).toBe(110);
    expect(orphanedSendingMinutes({ limit: 3, delaySeconds: 60, backoff: false })).toBe(37);
    // What no job will finish any more (e.g. its dead-letter job failed too).
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'SENDING', updated_at = now() - make_interval(mins => ${minutes + 1}) WHERE id = ${orphan.id}`,
    );
    // Just inside the threshold: a job can still come back for it — left alone.
    await t.db.db.execute(
      sql`UPDATE message SET outbound_status = 'SENDING', updated_at = now() - make_interval(mins => ${minutes - 2}) WHERE id = ${young.id}`,
    );
    await t.db.db.execute(
      sql`UPDATE message SET updated_at = now() - interval '2 hours' WHERE id = ${sent.id}`,
    );
    expect(await giveUpOrphanedSends(t.app.engine)).toBeGreaterThanOrEqual(1);
    const status = async (id: string) => (await t.db.db.select().from(message).where(eq(message.id, id)))[0]!;
    const o = await status(orphan.id);
    expect(o.outboundStatus).toBe("FAILED");
    expect(o.outboundError).toBe(
      `gave up: no delivery outcome recorded ${minutes} minutes after attempt 1 (whether the relay accepted it is unknown)`,
    );
    const failed = await eventsOf(t, orphan.conversationId, "message.failed");
    expect(failed.map((e) => e.payload)).toEqual([
      expect.objectContaining({ messageId: orphan.id, kind: "no_outcome" }),
    ]);
    expect((await status(young.id)).outboundStatus).toBe("SENDING");
    expect((await status(sent.id)).outboundStatus).toBe("SENT");
    // Nothing sent by the sweep, and a second sweep finds nothing of these.
    expect(orphan.copies()).toBe(1);
    await giveUpOrphanedSends(t.app.engine);
    expect(await eventsOf(t, orphan.conversationId, "message.failed")).toHaveLength(1);
    expect((await status(young.id)).outboundStatus).toBe("SENDING");
    // Leave no SENDING row behind for later tests' jobs.
    await t.db.db.execute(sql`UPDATE message SET outbound_status = 'SENT' WHERE id = ${young.id}`);
  });

  it("recording SENT fails after the server accepted the mail: never back to QUEUED, the retry records it without sending again", async () => {
    const q = await handlerQueue("send-test-unrecorded", {
      retryLimit: 5,
      deadLetter: "send-test-unrecorded-dead",
    });
    const m = await deliveredReply("Unrecorded");
    const acceptedAt = clock.now().toISOString();
    const allowSent = await requeueRefusingSent(m.id);
    const jobId = await q.send({ tenantId: t.tenantId, messageId: m.id });
    try {
      expect(await q.attempt()).toBe(1);
      expect(m.copies()).toBe(2);
      const [row] = await t.db.db.select().from(message).where(eq(message.id, m.id));
      expect(row!.outboundStatus).toBe("SENDING");
      const job = await q.job(jobId);
      expect(job.state).toBe("retry");
      expect(job.output).toMatchObject({
        error: expect.stringMatching(/record refused/),
        accepted: { at: acceptedAt, accepted: expect.arrayContaining(["alice@customer.example"]) },
      });
      // The database still refuses: the retry fails again and keeps the acceptance.
      expect(await q.attempt()).toBe(1);
      expect((await q.job(jobId)).output).toMatchObject({ accepted: { at: acceptedAt } });
    } finally {
      await allowSent();
    }
    // Even once the claim is stale, the retry records what was accepted and sends nothing.
    await t.db.db.execute(
      sql`UPDATE message SET updated_at = now() - interval '11 minutes' WHERE id = ${m.id}`,
    );
    const row = await expectRecordedOnce(q, jobId, m, acceptedAt);
    expect(row.sendAttempts).toBe(m.attempts + 1);
    const sentEvents = (await eventsOf(t, m.conversationId, "message.sent")).filter(
      (e) => (e.payload as { messageId: string }).messageId === m.id,
    );
    expect(sentEvents).toHaveLength(2);
  });

  it("a permanent 5xx fails the message with the reason; a supervisor can retry it", async () => {
    const rejecting = await startRejectingSink("RCPT");
    sinks.push(rejecting);
    const a = await newAddress(rejecting);
    const conv = await inbound(a, { from: "Nora <nora@nope.example>", subject: "Nope" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "x" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const m = await waitForStatus(t, id, ["FAILED", "SENT"]);
    expect(m.outboundStatus).toBe("FAILED");
    expect(m.outboundError).toMatch(/^permanent: 550/);
    expect(m.sendAttempts).toBe(1);
    // Every recipient was refused at RCPT TO: each is named with the relay's reply, and the
    // contact's address is undeliverable, as after a permanent bounce.
    expect(m.failedRecipients).toEqual([
      { address: "nora@nope.example", responseCode: 550, reason: expect.stringMatching(/5\.1\.1/) },
    ]);
    const [refused] = await t.db.db.select().from(contact).where(eq(contact.email, "nora@nope.example"));
    expect(refused!.undeliverable).toBe(true);
    expect(refused!.undeliverableReason).toMatch(/^550 .*5\.1\.1/);
    const rejectedEvents = await eventsOf(
      t,
      decodeId(conv.id, "Conversation"),
      "message.recipients_rejected",
    );
    expect(rejectedEvents.map((e) => e.payload)).toEqual([
      expect.objectContaining({ messageId: id, markedUndeliverable: ["nora@nope.example"] }),
    ]);
    const denied = await t.ok(RETRY, { m: encodeId("Message", id) }, agent.key).catch((e) => String(e));
    expect(String(JSON.stringify(denied))).toMatch(/Forbidden|FORBIDDEN/);
    const retried = await t.ok(RETRY, { m: encodeId("Message", id) }, supervisor.key);
    expect(retried.retryMessage.outboundStatus).toBe("QUEUED");
    const again = await waitFor(async () => {
      const [x] = await t.db.db.select().from(message).where(eq(message.id, id));
      return x!.sendAttempts === 2 && x!.outboundStatus === "FAILED" ? x : null;
    }, "second failure");
    expect(again.outboundStatus).toBe("FAILED");
  });

  it("a 5xx for one recipient: SENT to the others, that recipient failed with the reason and undeliverable", async () => {
    const picky = await startRejectingSink("RCPT", ["gone@picky.example"]);
    sinks.push(picky);
    const a = await newAddress(picky);
    const r = await t.ok(
      START,
      {
        i: {
          fromAddressId: encodeId("EmailAddress", a.addressId),
          to: [{ address: "Gone@picky.example", name: "Gone" }],
          cc: [{ address: "still-here@picky.example", name: "" }],
          subject: "Two recipients",
          text: "Hello both.",
        },
      },
      supervisor.key,
    );
    expect(r.startConversation.__typename).toBe("Message");
    const id = decodeId(r.startConversation.id, "Message");
    const m = await waitForStatus(t, id, ["SENT", "FAILED"]);
    expect(m.outboundStatus).toBe("SENT");
    expect(m.failedRecipients).toEqual([
      { address: "Gone@picky.example", responseCode: 550, reason: expect.stringMatching(/^550 5\.1\.1/) },
    ]);
    expect(picky.messages.map((x) => x.rcptTo)).toEqual([["still-here@picky.example"]]);
    const [gone] = await t.db.db.select().from(contact).where(eq(contact.email, "gone@picky.example"));
    expect(gone!.undeliverable).toBe(true);
    expect(gone!.undeliverableReason).toMatch(/^550 /);
    const events = await eventsOf(t, m.conversationId);
    const sentEvent = events.find((e) => e.type === "message.sent");
    expect(sentEvent!.payload).toMatchObject({ accepted: ["still-here@picky.example"] });
    const rejected = events.filter((e) => e.type === "message.recipients_rejected");
    expect(rejected.map((e) => e.payload)).toEqual([
      {
        messageId: id,
        recipients: [{ address: "Gone@picky.example", responseCode: 550, reason: expect.any(String) }],
        markedUndeliverable: ["Gone@picky.example"],
      },
    ]);
    // The API shows the refusal on the message.
    const q = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { messages { edges { node { id failedRecipients { address responseCode reason } } } } } } }`,
      { id: encodeId("Conversation", m.conversationId) },
      supervisor.key,
    );
    const shown = q.node.messages.edges
      .map((e: any) => e.node)
      .find((x: { id: string }) => x.id === encodeId("Message", id));
    expect(shown.failedRecipients).toEqual([
      { address: "Gone@picky.example", responseCode: 550, reason: expect.stringMatching(/5\.1\.1/) },
    ]);
  });

  it("a delivery report marks the reply BOUNCED and a 5.x.x contact undeliverable, without a conversation", async () => {
    const conv = await inbound(addr, { from: "Gone <gone@customer.example>", subject: "Bounce me" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "hello" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const sent = await waitForStatus(t, id, ["SENT"]);
    const convCount = (await t.db.db.select({ id: conversation.id }).from(conversation)).length;
    const report = buildDeliveryReport("help@acme.test", {
      original: { messageId: sent.messageIdHeader!, subject: "Re: Bounce me" },
    });
    const out = await ingestAt(t, addr.addressId, report);
    expect(out.status).toBe("report");
    const [m] = await t.db.db.select().from(message).where(eq(message.id, id));
    expect(m!.outboundStatus).toBe("BOUNCED");
    expect(m!.outboundError).toContain("5.1.1");
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.email, "gone@customer.example"));
    expect(ct!.undeliverable).toBe(true);
    expect((await t.db.db.select({ id: conversation.id }).from(conversation)).length).toBe(convCount);
    expect(await eventsOf(t, decodeId(conv.id, "Conversation"), "message.bounced")).toHaveLength(1);
  });
  it("a plain-text (non RFC 3464) bounce is matched by the heuristic fallback", async () => {
    const conv = await inbound(addr, { from: "Old <old@legacy.example>", subject: "Legacy" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "hello" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const sent = await waitForStatus(t, id, ["SENT"]);
    const bounce = [
      "From: MAILER-DAEMON@legacy.example",
      "To: help@acme.test",
      "Subject: failure notice",
      "MIME-Version: 1.0",
      "Content-Type: text/plain",
      "",
      "Hi. This is the qmail-send program at legacy.example.",
      "I'm afraid I wasn't able to deliver your message to the following addresses.",
      "",
      "<old@legacy.example>:",
      "Sorry, no mailbox here by that name. (#5.1.1) 550 5.1.1 user unknown",
      "",
      "--- Below this line is a copy of the message.",
      "",
      "Return-Path: <help@acme.test>",
      `Message-ID: <${sent.messageIdHeader}>`,
      "Subject: Re: Legacy",
      "",
    ].join("\r\n");
    const out = await ingestAt(t, addr.addressId, Buffer.from(bounce));
    expect(out.status).toBe("report");
    const [m] = await t.db.db.select().from(message).where(eq(message.id, id));
    expect(m!.outboundStatus).toBe("BOUNCED");
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.email, "old@legacy.example"));
    expect(ct!.undeliverable).toBe(true);
  });
  // Found by a probe (2026-11-23): the host's IP address before "550 5.1.1" was read as the
  // status (2.3.4 "delivered"), so the reply stayed SENT and the contact deliverable.
  it("an Exim bounce naming the host's IP address marks the reply BOUNCED with the reply's 5.1.1", async () => {
    const conv = await inbound(addr, { from: "Gone <gone6@customer.example>", subject: "Exim order" });
    const r = await t.ok(REPLY, { c: conv.id, i: { text: "hello" } }, supervisor.key);
    const id = decodeId(r.replyToConversation.id, "Message");
    const sent = await waitForStatus(t, id, ["SENT"]);
    const convCount = (await t.db.db.select({ id: conversation.id }).from(conversation)).length;
    const bounce = [
      "Return-Path: <>",
      "From: Mail Delivery System <Mailer-Daemon@mx.customer.example>",
      "To: help@acme.test",
      "Subject: Mail delivery failed: returning message to sender",
      "Message-ID: <exim-a@mx.customer.example>",
      "X-Failed-Recipients: gone6@customer.example",
      "Auto-Submitted: auto-replied",
      "",
      ...eximFailureLines({
        original: { messageId: sent.messageIdHeader!, from: "help@acme.test", subject: "Re: Exim order" },
      }),
      "",
    ].join("\r\n");
    const out = await ingestAt(t, addr.addressId, Buffer.from(bounce));
    expect(out.status).toBe("report");
    const [m] = await t.db.db.select().from(message).where(eq(message.id, id));
    expect(m!.outboundStatus).toBe("BOUNCED");
    expect(m!.outboundError).toMatch(/^5\.1\.1 /);
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.email, "gone6@customer.example"));
    expect(ct!.undeliverable).toBe(true);
    expect((await t.db.db.select({ id: conversation.id }).from(conversation)).length).toBe(convCount);
  });
});

describe("header injection", () => {
  it("no CR/LF/NUL from any field reaches a header of the sent mail", async () => {
    const evil = "x\r\nBcc: victim@evil.example\r\nX-Injected: yes\u0000";
    // PostgreSQL text cannot hold NUL: what is stored (address, user, inbound ids) gets CR/LF only.
    const evilDb = evil.replace("\u0000", "");
    const a = await newAddress(sink, { displayName: `Brand${evilDb}` });
    await t.db.db.update(tenant).set({ agentsMayEditSubject: true }).where(eq(tenant.id, t.tenantId));
    await t.db.db
      .update(user)
      .set({ name: `Ann${evilDb}` })
      .where(eq(user.id, supervisor.id));
    try {
      const conv = await inbound(a, { subject: "Inject" });
      // In-Reply-To/References from inbound mail: make the stored ids hostile, as a parser bug might.
      await t.db.db
        .update(message)
        .set({ messageIdHeader: `evil@x>${evilDb}`, references: [`<r@x>${evilDb}`, "ok@customer.example"] })
        .where(eq(message.conversationId, decodeId(conv.id, "Conversation")));
      // Addresses with control characters are refused, naming the field.
      for (const field of ["to", "cc", "bcc"]) {
        const bad = await t.ok(
          REPLY,
          { c: conv.id, i: { text: "x", [field]: [{ address: `a@b.example${evil}` }] } },
          supervisor.key,
        );
        expect(bad.replyToConversation).toMatchObject({
          __typename: "ValidationError",
          field: `recipients.${field}[0]`,
        });
      }
      const badType = await t.ok(
        REPLY,
        {
          c: conv.id,
          i: {
            text: "x",
            attachments: [{ filename: "a.txt", contentType: `text/plain${evil}`, contentBase64: "eA==" }],
          },
        },
        supervisor.key,
      );
      expect(badType.replyToConversation).toMatchObject({ field: "attachments[0].contentType" });
      const r = await t.ok(
        REPLY,
        {
          c: conv.id,
          i: {
            text: `body${evil}`,
            subject: `Subject${evil}`,
            to: [{ address: "alice@customer.example", name: `Alice${evil}` }],
            cc: [{ address: "carl@customer.example", name: `Carl${evil}` }],
            attachments: [
              {
                filename: `f${evil}.txt`,
                contentType: "text/plain",
                contentBase64: "eA==",
                contentId: "c1@x",
              },
            ],
          },
        },
        supervisor.key,
      );
      expect(r.replyToConversation.__typename).toBe("Message");
      const id = decodeId(r.replyToConversation.id, "Message");
      const sent = await waitForStatus(t, id, ["SENT"]);
      const captured = capturedWith(sink, sent.messageIdHeader);
      expect(captured.rcptTo).not.toContain("victim@evil.example");
      const lines = headerLines(captured.raw);
      expect(lines.filter((l) => /^(bcc|x-injected):/i.test(l))).toEqual([]);
      expect(captured.raw.includes(0)).toBe(false);
      const mail = await parseCaptured(captured.raw);
      expect(mail.headers.has("x-injected")).toBe(false);
      expect(mail.headers.has("bcc")).toBe(false);
      expect(mail.inReplyTo).toBeUndefined();
      // The valid id inside the hostile value is kept; the rest never reaches the header.
      expect(mail.references).toEqual(["<r@x>", "<ok@customer.example>"]);
      expect(mail.subject).not.toMatch(/[\r\n\0]/);
      expect(mail.from?.value[0]?.name).not.toMatch(/[\r\n\0]/);
      expect(mail.attachments[0]!.filename).not.toMatch(/[\r\n\0]/);
    } finally {
      await t.db.db.update(tenant).set({ agentsMayEditSubject: false }).where(eq(tenant.id, t.tenantId));
    }
  });
});

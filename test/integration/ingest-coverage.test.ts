/**
 * Ingest behaviour reached only through the real entry points — the SMTP listener (sent to
 * with nodemailer) and the GraphQL API that configures and reads it — that no other test
 * covers: one Message-ID in two tenants, reopening switched off, inbound STARTTLS, and the
 * three spam routings.
 */
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq } from "drizzle-orm";
import nodemailer, { type SendMailOptions } from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { message } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { decodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { testCertificate } from "../helpers/smtp-sinks.js";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ env: { SMTP_ENABLED: "true", SMTP_PORT: "0" } });
});
afterAll(async () => {
  await t?.stop();
});

/** Plain SMTP to a listener (the way an MX without TLS delivers). */
function plainTransport(port: number) {
  return nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
}

/** Sends raw RFC 5322 bytes in one SMTP transaction to every recipient in `to`. */
async function sendRaw(raw: Buffer, to: string[], port = t.app.smtp!.port) {
  const info = await plainTransport(port).sendMail({
    envelope: { from: "carol@customer.example", to },
    raw,
  });
  expect(info.response).toMatch(/^250/);
  return info;
}

async function send(to: string, extra: Partial<SendMailOptions> = {}) {
  const info = await plainTransport(t.app.smtp!.port).sendMail({
    from: "Carol <carol@customer.example>",
    to,
    subject: "Via SMTP",
    text: "Hello over SMTP",
    ...extra,
  });
  expect(info.response).toMatch(/^250/);
  return info;
}

const CONVERSATION_FIELDS = `id status subject queueId tags spam previousConversationId
  messages(first: 10) { edges { node { messageIdHeader } } }
  timeline(first: 20) { edges { node { type payload } } }`;

interface Conv {
  id: string;
  status: string;
  subject: string;
  queueId: string | null;
  tags: string[];
  spam: boolean;
  previousConversationId: string | null;
  messages: { messageIdHeader: string | null }[];
  timeline: { edges: { node: { type: string; payload: Record<string, unknown> } }[] };
}

/** Every conversation the key's tenant holds, through the API. */
async function conversationsOf(key: string): Promise<Conv[]> {
  const r = await t.ok<{ conversations: { edges: { node: ConvPage }[] } }>(
    `{ conversations(first: 50) { edges { node { ${CONVERSATION_FIELDS} } } } }`,
    {},
    key,
  );
  return r.conversations.edges.map((e) => flat(e.node));
}

type ConvPage = Omit<Conv, "messages"> & { messages: { edges: { node: Conv["messages"][number] }[] } };
const flat = (c: ConvPage): Conv => ({ ...c, messages: c.messages.edges.map((e) => e.node) });

async function conversationById(id: string, key: string): Promise<Conv | null> {
  const r = await t.ok<{ node: ConvPage | null }>(
    `query($id: ID!) { node(id: $id) { ... on Conversation { ${CONVERSATION_FIELDS} } } }`,
    { id },
    key,
  );
  return r.node && flat(r.node);
}

/** The one conversation holding a message with this Message-ID in the key's tenant. */
async function conversationWith(messageId: string, key: string): Promise<Conv> {
  const hits = (await conversationsOf(key)).filter((c) =>
    c.messages.some((m) => m.messageIdHeader === messageId),
  );
  expect(hits, `conversations holding <${messageId}>`).toHaveLength(1);
  return hits[0]!;
}

const newTenant = (name: string) =>
  createTenantWithAdmin(t.db.db, { tenantName: name, adminEmail: `admin@${name.toLowerCase()}.test` });

describe("one Message-ID in two tenants", () => {
  it("stores one message and one conversation per tenant, and a reply threads only in its own tenant", async () => {
    const alpha = await newTenant("Alpha");
    const beta = await newTenant("Beta");
    await createQueueWithAddress(t.db.db, alpha.tenantId, { address: "help@alpha.test" });
    await createQueueWithAddress(t.db.db, beta.tenantId, { address: "help@beta.test" });

    // The very same bytes to both tenants, in one SMTP transaction (one copy per recipient).
    const original = buildRawMail({
      from: "Carol <carol@customer.example>",
      to: "help@alpha.test, help@beta.test",
      subject: "Shared order",
      messageId: "shared-1@customer.example",
    });
    await sendRaw(original, ["help@alpha.test", "help@beta.test"]);

    const rows = await t.db.db
      .select({ tenantId: message.tenantId, conversationId: message.conversationId })
      .from(message)
      .where(eq(message.messageIdHeader, "shared-1@customer.example"));
    expect(rows.map((r) => r.tenantId).sort()).toEqual([alpha.tenantId, beta.tenantId].sort());
    expect(new Set(rows.map((r) => r.conversationId)).size).toBe(2);

    const inAlpha = await conversationsOf(alpha.apiKey);
    const inBeta = await conversationsOf(beta.apiKey);
    expect(inAlpha).toHaveLength(1);
    expect(inBeta).toHaveLength(1);
    expect(inAlpha[0]).toMatchObject({
      subject: "Shared order",
      messages: [{ messageIdHeader: "shared-1@customer.example" }],
    });
    expect(inBeta[0]).toMatchObject({
      subject: "Shared order",
      messages: [{ messageIdHeader: "shared-1@customer.example" }],
    });
    const convA = inAlpha[0]!.id;
    const convB = inBeta[0]!.id;
    // Neither tenant can read the other's conversation.
    expect(await conversationById(convA, beta.apiKey)).toBeNull();
    expect(await conversationById(convB, alpha.apiKey)).toBeNull();

    // A reply to that Message-ID sent to Beta only: Beta's conversation, never Alpha's.
    const reply = buildRawMail({
      from: "Carol <carol@customer.example>",
      to: "help@beta.test",
      subject: "Re: Shared order",
      messageId: "shared-2@customer.example",
      headers: { "In-Reply-To": "<shared-1@customer.example>", References: "<shared-1@customer.example>" },
    });
    await sendRaw(reply, ["help@beta.test"]);

    const afterB = await conversationsOf(beta.apiKey);
    expect(afterB).toHaveLength(1);
    expect(afterB[0]!.id).toBe(convB);
    expect(afterB[0]!.messages.map((m) => m.messageIdHeader)).toEqual([
      "shared-1@customer.example",
      "shared-2@customer.example",
    ]);
    const afterA = await conversationsOf(alpha.apiKey);
    expect(afterA.map((c) => c.id)).toEqual([convA]);
    expect(afterA[0]!.messages.map((m) => m.messageIdHeader)).toEqual(["shared-1@customer.example"]);
    expect(afterA[0]!.timeline.edges.map((e) => e.node.type)).not.toContain("conversation.threaded");
    const [replyRow] = await t.db.db
      .select({ tenantId: message.tenantId, conversationId: message.conversationId })
      .from(message)
      .where(eq(message.messageIdHeader, "shared-2@customer.example"));
    expect(replyRow).toEqual({ tenantId: beta.tenantId, conversationId: decodeId(convB, "Conversation") });

    // And the same holds the other way round.
    await sendRaw(
      buildRawMail({
        from: "Carol <carol@customer.example>",
        to: "help@alpha.test",
        subject: "Re: Shared order",
        messageId: "shared-3@customer.example",
        headers: { "In-Reply-To": "<shared-1@customer.example>" },
      }),
      ["help@alpha.test"],
    );
    expect((await conversationWith("shared-3@customer.example", alpha.apiKey)).id).toBe(convA);
    expect((await conversationsOf(beta.apiKey)).flatMap((c) => c.messages)).toHaveLength(2);
  });
});

describe("reopening switched off", () => {
  it("links a new conversation to a CLOSED one the customer replies to and leaves the old one CLOSED", async () => {
    const gamma = await newTenant("Gamma");
    await createQueueWithAddress(t.db.db, gamma.tenantId, { address: "help@gamma.test" });
    const SETTINGS = `mutation($input: TenantSettingsInput!) { updateTenantSettings(input: $input) {
      __typename ... on TenantSettings { reopenEnabled reopenWindowDays } } }`;
    const off = await t.ok(SETTINGS, { input: { reopenEnabled: false } }, gamma.apiKey);
    expect(off.updateTenantSettings).toEqual({
      __typename: "TenantSettings",
      reopenEnabled: false,
      reopenWindowDays: 30,
    });

    await send("help@gamma.test", { subject: "Broken kettle", messageId: "<kettle-1@customer.example>" });
    const old = await conversationWith("kettle-1@customer.example", gamma.apiKey);
    const closed = await t.ok(
      `mutation($id: ID!) { setConversationStatus(conversationId: $id, status: CLOSED) {
        __typename ... on Conversation { status } } }`,
      { id: old.id },
      gamma.apiKey,
    );
    expect(closed.setConversationStatus).toEqual({ __typename: "Conversation", status: "CLOSED" });

    // Well inside the 30-day window: with reopening on this would reopen the old one.
    await send("help@gamma.test", {
      subject: "Re: Broken kettle",
      messageId: "<kettle-2@customer.example>",
      inReplyTo: "<kettle-1@customer.example>",
      references: "<kettle-1@customer.example>",
    });
    const fresh = await conversationWith("kettle-2@customer.example", gamma.apiKey);
    expect(fresh.id).not.toBe(old.id);
    expect(fresh).toMatchObject({ status: "NEW", previousConversationId: old.id });
    const created = fresh.timeline.edges.find((e) => e.node.type === "conversation.created");
    expect(created?.node.payload.previousConversationId).toBe(decodeId(old.id, "Conversation"));

    const oldNow = (await conversationById(old.id, gamma.apiKey))!;
    expect(oldNow.status).toBe("CLOSED");
    expect(oldNow.messages.map((m) => m.messageIdHeader)).toEqual(["kettle-1@customer.example"]);
    expect(oldNow.timeline.edges.map((e) => e.node.type)).not.toContain("conversation.threaded");

    // The setting is what decided: switched back on, the next reply reopens the old one.
    const on = await t.ok(SETTINGS, { input: { reopenEnabled: true } }, gamma.apiKey);
    expect(on.updateTenantSettings.reopenEnabled).toBe(true);
    await send("help@gamma.test", {
      subject: "Re: Broken kettle",
      messageId: "<kettle-3@customer.example>",
      inReplyTo: "<kettle-1@customer.example>",
    });
    expect(await conversationWith("kettle-3@customer.example", gamma.apiKey)).toMatchObject({
      id: old.id,
      status: "REOPENED",
    });
  });
});

/** The EHLO keywords a listener advertises (one line each, without the reply code). */
async function ehloKeywords(port: number): Promise<string[]> {
  const socket = connect(port, "127.0.0.1");
  socket.setEncoding("utf8");
  let buf = "";
  const until = async (done: RegExp) => {
    while (!done.test(buf)) await once(socket, "data").then(([d]) => (buf += d as string));
  };
  try {
    await until(/^220 .*\r\n/m);
    buf = "";
    socket.write("EHLO client.example\r\n");
    await until(/^250 .*\r\n/m);
    socket.write("QUIT\r\n");
    return buf
      .split("\r\n")
      .slice(1)
      .filter(Boolean)
      .map((l) => l.slice(4).toUpperCase());
  } finally {
    socket.destroy();
  }
}

describe("inbound STARTTLS", () => {
  let tlsApp: TestApp;
  let dir: string;
  let cert: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-smtp-tls-"));
    const keyFile = join(dir, "key.pem");
    const certFile = join(dir, "cert.pem");
    // The shared throwaway self-signed pair (SAN 127.0.0.1), as files for the listener.
    const pair = testCertificate();
    writeFileSync(keyFile, pair.key);
    writeFileSync(certFile, pair.cert);
    cert = readFileSync(certFile);
    tlsApp = await startTestApp({
      env: {
        SMTP_ENABLED: "true",
        SMTP_PORT: "0",
        SMTP_TLS_KEY_FILE: keyFile,
        SMTP_TLS_CERT_FILE: certFile,
      },
    });
    await createQueueWithAddress(tlsApp.db.db, tlsApp.tenantId, { address: "secure@acme.test" });
    await createQueueWithAddress(t.db.db, t.tenantId, { address: "plain@acme.test" });
  });
  afterAll(async () => {
    await tlsApp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("upgrades with STARTTLS using the configured certificate and stores the mail", async () => {
    expect(await ehloKeywords(tlsApp.app.smtp!.port)).toContain("STARTTLS");
    const info = await nodemailer
      .createTransport({
        host: "127.0.0.1",
        port: tlsApp.app.smtp!.port,
        secure: false,
        requireTLS: true,
        // Trusting exactly our certificate (not rejectUnauthorized: false) proves it is the
        // configured one the listener presented.
        tls: { ca: [cert] },
      })
      .sendMail({
        from: "Carol <carol@customer.example>",
        to: "secure@acme.test",
        subject: "Over TLS",
        text: "Encrypted hello",
        messageId: "<tls-1@customer.example>",
      });
    expect(info.response).toMatch(/^250/);
    const [m] = await tlsApp.db.db
      .select({ subject: message.subject, tenantId: message.tenantId, text: message.text })
      .from(message)
      .where(eq(message.messageIdHeader, "tls-1@customer.example"));
    expect(m).toMatchObject({ subject: "Over TLS", tenantId: tlsApp.tenantId });
    expect(m!.text).toContain("Encrypted hello");
  });

  it("does not offer STARTTLS without a certificate: a client that requires TLS gets nowhere", async () => {
    const port = t.app.smtp!.port;
    const keywords = await ehloKeywords(port);
    // The parse saw the real keyword list (so the absence below is not vacuous).
    expect(keywords).toEqual(expect.arrayContaining(["PIPELINING", expect.stringMatching(/^SIZE \d+$/)]));
    expect(keywords).not.toContain("STARTTLS");
    const err = await nodemailer
      .createTransport({
        host: "127.0.0.1",
        port,
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
      })
      .sendMail({
        from: "Carol <carol@customer.example>",
        to: "plain@acme.test",
        subject: "Wants TLS",
        text: "hello",
        messageId: "<tls-2@customer.example>",
      })
      .then(
        () => null,
        (e: unknown) => e as { responseCode?: number; command?: string },
      );
    expect(err).not.toBeNull();
    expect(err).toMatchObject({ command: "STARTTLS" });
    expect(err!.responseCode).toBeGreaterThanOrEqual(500);
    const rows = await t.db.db
      .select({ id: message.id })
      .from(message)
      .where(eq(message.messageIdHeader, "tls-2@customer.example"));
    expect(rows).toEqual([]);
  });
});

describe("spam routing during ingest", () => {
  let inboxQueue: string;
  let spamQueue: string;
  const addresses: Record<"QUEUE" | "TAG" | "DROP", string> = {
    QUEUE: "spam-queue@acme.test",
    TAG: "spam-tag@acme.test",
    DROP: "spam-drop@acme.test",
  };

  beforeAll(async () => {
    const q = async (name: string) =>
      (
        await t.ok(`mutation($n: String!) { createQueue(input: { name: $n }) { ... on Queue { id } } }`, {
          n: name,
        })
      ).createQueue.id as string;
    inboxQueue = await q("Inbox");
    spamQueue = await q("Spam");
    for (const [routing, address] of Object.entries(addresses)) {
      const r = await t.ok(
        `mutation($input: EmailAddressInput!) { createEmailAddress(input: $input) {
          __typename ... on EmailAddress { spamRouting } ... on ValidationError { field } } }`,
        {
          input: {
            address,
            name: `Spam ${routing}`,
            queueId: inboxQueue,
            spamRouting: routing,
            ...(routing === "QUEUE" ? { spamQueueId: spamQueue } : {}),
          },
        },
      );
      expect(r.createEmailAddress).toEqual({ __typename: "EmailAddress", spamRouting: routing });
    }
  });

  const SPAM = { "X-Spam-Flag": "YES", "X-Spam-Status": "Yes, score=9.3 required=5.0" };

  it("QUEUE: spam lands in the address's spam queue, flagged as spam", async () => {
    await send(addresses.QUEUE, {
      subject: "Cheap pills",
      messageId: "<sq-1@spammer.example>",
      headers: SPAM,
    });
    const c = await conversationWith("sq-1@spammer.example", t.adminKey);
    expect(c).toMatchObject({ queueId: spamQueue, spam: true });
    // Ham to the same address goes to its normal queue.
    await send(addresses.QUEUE, { subject: "Real order", messageId: "<sq-2@customer.example>" });
    expect(await conversationWith("sq-2@customer.example", t.adminKey)).toMatchObject({
      queueId: inboxQueue,
      spam: false,
      tags: [],
    });
  });

  it("TAG: spam lands in the normal queue, tagged spam", async () => {
    await send(addresses.TAG, { subject: "You won", messageId: "<st-1@spammer.example>", headers: SPAM });
    const c = await conversationWith("st-1@spammer.example", t.adminKey);
    expect(c).toMatchObject({ queueId: inboxQueue, spam: true, tags: ["spam"] });
    const queued = c.timeline.edges.find((e) => e.node.type === "conversation.queued");
    expect(queued?.node.payload).toMatchObject({ spam: true });
  });

  it("DROP: no conversation; a spam_dropped record admins can read, and a message.rejected event", async () => {
    const before = (await conversationsOf(t.adminKey)).length;
    await send(addresses.DROP, {
      subject: "Crypto riches",
      messageId: "<sd-1@spammer.example>",
      headers: SPAM,
    });
    expect((await conversationsOf(t.adminKey)).length).toBe(before);
    expect(
      await t.db.db
        .select({ id: message.id })
        .from(message)
        .where(and(eq(message.tenantId, t.tenantId), eq(message.messageIdHeader, "sd-1@spammer.example"))),
    ).toEqual([]);

    const list = await t.ok(
      `{ rejectedMessages(first: 50) { edges { node { id reason detail messageIdHeader fromAddress subject rawAvailable } } } }`,
    );
    const dropped = list.rejectedMessages.edges
      .map((e: { node: Record<string, unknown> }) => e.node)
      .filter((n: Record<string, unknown>) => n.messageIdHeader === "sd-1@spammer.example");
    expect(dropped).toEqual([
      {
        id: expect.any(String),
        reason: "spam_dropped",
        detail: "X-Spam-Flag: YES",
        messageIdHeader: "sd-1@spammer.example",
        fromAddress: "carol@customer.example",
        subject: "Crypto riches",
        rawAvailable: true,
      },
    ]);

    // The drop is on the tenant's event stream (it has no conversation to be on).
    const event = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no message.rejected event")), 10_000);
      const stop = t
        .ws(t.adminKey)
        .subscribe<{ tenantEvents: { type: string; payload: Record<string, unknown> } }>(
          { query: `subscription { tenantEvents(after: "0.0") { type payload } }` },
          {
            next: (m) => {
              const e = m.data?.tenantEvents;
              if (e?.type === "message.rejected" && e.payload.reason === "spam_dropped") {
                clearTimeout(timer);
                stop();
                resolve(e.payload);
              }
            },
            error: (err) => {
              clearTimeout(timer);
              reject(err);
            },
            complete: () => {},
          },
        );
    });
    expect(event).toMatchObject({
      reason: "spam_dropped",
      detail: "X-Spam-Flag: YES",
      rejectedId: decodeId(dropped[0].id, "RejectedMessage"),
    });

    // Ham to the dropping address is delivered as usual.
    await send(addresses.DROP, { subject: "Genuine question", messageId: "<sd-2@customer.example>" });
    expect(await conversationWith("sd-2@customer.example", t.adminKey)).toMatchObject({
      queueId: inboxQueue,
      spam: false,
    });
  });
});

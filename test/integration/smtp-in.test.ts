import { createHash } from "node:crypto";
import { once } from "node:events";
import { connect } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { and, eq, notInArray } from "drizzle-orm";
import nodemailer, { type SendMailOptions } from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSmtpListener } from "../../src/connectors/smtp-in.js";
import { conversation, message, rawMessage, rejectedMessage, tenant } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { refuseMessageInserts } from "../helpers/db.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildDeliveryReport } from "../helpers/raw-mail.js";

let t: TestApp;
let addr: { queueId: string; addressId: string; address: string };

function transport() {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port: t.app.smtp!.port,
    secure: false,
    ignoreTLS: true,
    tls: { rejectUnauthorized: false },
  });
}

async function send(to: string, extra: Partial<SendMailOptions> = {}) {
  return transport().sendMail({
    from: "Carol <carol@customer.example>",
    to,
    subject: "Via SMTP",
    text: "Hello over SMTP",
    ...extra,
  });
}

/** A raw SMTP client: `reply()` waits for the next final reply line after what was written. */
function smtpDialog(port = t.app.smtp!.port) {
  const socket = connect(port, "127.0.0.1");
  socket.setEncoding("utf8");
  let received = "";
  const replies: string[] = [];
  socket.on("data", (d: string) => {
    received += d;
    for (let nl = received.indexOf("\r\n"); nl >= 0; nl = received.indexOf("\r\n")) {
      const line = received.slice(0, nl);
      received = received.slice(nl + 2);
      if (/^\d{3} /.test(line)) replies.push(line);
    }
  });
  let seen = 0;
  const reply = async (): Promise<string> => {
    while (replies.length === seen) await once(socket, "data");
    return replies[seen++]!;
  };
  /** Writes a command and returns its reply. */
  const command = async (cmd: string): Promise<string> => {
    socket.write(`${cmd}\r\n`);
    return reply();
  };
  return { socket, reply, command };
}

/** The greeting, EHLO, MAIL FROM, RCPT TO (accepted) and DATA (354): ready for the message. */
async function readyForData(
  d: ReturnType<typeof smtpDialog>,
  opts: { helo?: string; from?: string; rcpt?: string } = {},
): Promise<void> {
  expect(await d.reply()).toMatch(/^220/);
  await d.command(`EHLO ${opts.helo ?? "sender.example"}`);
  await d.command(`MAIL FROM:<${opts.from ?? "carol@customer.example"}>`);
  expect(await d.command(`RCPT TO:<${opts.rcpt ?? "help@acme.test"}>`)).toMatch(/^250/);
  expect(await d.command("DATA")).toMatch(/^354/);
}

beforeAll(async () => {
  t = await startTestApp({
    env: { SMTP_ENABLED: "true", SMTP_PORT: "0", MAX_MESSAGE_BYTES: String(512 * 1024) },
  });
  addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "help@acme.test" });
});
afterAll(async () => {
  await t?.stop();
});

describe("inbound SMTP listener", () => {
  it("accepts mail for a configured address and opens a conversation before answering 250", async () => {
    const info = await send("help@acme.test", { messageId: "<smtp-1@customer.example>" });
    expect(info.response).toMatch(/^250/);
    // 250 came after commit: the row is there now, no waiting.
    const [m] = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "smtp-1@customer.example"));
    expect(m).toBeDefined();
    const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, m!.conversationId));
    expect(c).toMatchObject({ queueId: addr.queueId, subject: "Via SMTP", status: "NEW" });
  });

  it("keeps a mail the database refuses as quarantined (ingest_failed, raw kept) and accepts it; a passing error still gets 451", async () => {
    // Stand-ins for a value PostgreSQL can never store (class 22) and a passing failure.
    const removeTrap = await refuseMessageInserts(t.db.db, { Refused: "22021", Passing: "40001" });
    try {
      const raw =
        "From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Refused\r\n" +
        "Message-ID: <refused-1@customer.example>\r\n\r\nHello\r\n";
      // Twice (the sender lost our 250): one record, known by the parsed mail's content key.
      for (let attempt = 0; attempt < 2; attempt++) {
        const info = await transport().sendMail({
          envelope: { from: "carol@customer.example", to: ["help@acme.test"] },
          raw,
        });
        expect(info.response).toMatch(/^250/);
      }
      const rejs = await t.db.db
        .select()
        .from(rejectedMessage)
        .where(eq(rejectedMessage.reason, "ingest_failed"));
      expect(rejs).toHaveLength(1);
      const rej = rejs[0];
      expect(rej).toMatchObject({ tenantId: t.tenantId, addressId: addr.addressId, messageIdHeader: null });
      expect(rej!.contentHash).toMatch(/^[0-9a-f]{64}$/);
      expect(rej!.detail).toContain("refused by test");
      expect(rej!.rawMessageId).not.toBeNull();
      await expect(send("help@acme.test", { subject: "Passing" })).rejects.toMatchObject({
        responseCode: 451,
      });
    } finally {
      await removeTrap();
    }
  });

  it("refuses unknown recipients with 550", async () => {
    await expect(send("nobody@acme.test")).rejects.toMatchObject({ responseCode: 550 });
  });

  it("advertises SIZE and refuses oversize mail with 552", async () => {
    const err = await send("help@acme.test", { text: "y".repeat(700 * 1024) }).catch((e) => e);
    expect(err.responseCode).toBe(552);
  });

  it("stores a mail of exactly the advertised SIZE (our trace lines in front do not count), once when sent again", async () => {
    const limit = 512 * 1024;
    const head =
      "From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Exactly at SIZE\r\n" +
      "Message-ID: <exact-size@customer.example>\r\n\r\n";
    const line = `${"a".repeat(78)}\r\n`;
    let body = line.repeat(Math.floor((limit - head.length) / line.length) - 1);
    body += `${"b".repeat(limit - head.length - body.length - 2)}\r\n`;
    expect(head.length + body.length).toBe(limit);
    for (let attempt = 0; attempt < 2; attempt++) {
      const d = smtpDialog();
      try {
        await readyForData(d);
        d.socket.write(head + body);
        expect(await d.command(".")).toMatch(/^250/);
      } finally {
        d.socket.end();
      }
    }
    const stored = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "exact-size@customer.example"));
    expect(stored).toHaveLength(1);
    expect(stored[0]!.text.length).toBeGreaterThan(limit * 0.9);
    const rejected = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.messageIdHeader, "exact-size@customer.example"));
    expect(rejected).toEqual([]);
  });

  it("records an oversize mail without a Message-ID once, sent again and to two addresses; another one is recorded too", async () => {
    await createQueueWithAddress(t.db.db, t.tenantId, { address: "big@acme.test" });
    const big = (n: string) =>
      `From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Too big ${n}\r\n\r\n` +
      `${"x".repeat(998)}\r\n`.repeat(600);
    for (const mail of [big("one"), big("one"), big("two")]) {
      const d = smtpDialog();
      try {
        expect(await d.reply()).toMatch(/^220/);
        await d.command("EHLO sender.example");
        await d.command("MAIL FROM:<carol@customer.example>");
        expect(await d.command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
        expect(await d.command("RCPT TO:<big@acme.test>")).toMatch(/^250/);
        expect(await d.command("DATA")).toMatch(/^354/);
        d.socket.write(mail);
        expect(await d.command(".")).toMatch(/^552/);
      } finally {
        d.socket.end();
      }
    }
    const rows = await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.reason, "oversize"));
    const mine = rows.filter((r) => r.subject?.startsWith("Too big"));
    expect(mine.map((r) => r.subject).sort()).toEqual(["Too big one", "Too big two"]);
    expect(mine.every((r) => r.sizeBytes === big("one").length)).toBe(true);
  });

  it("an empty DATA opens no conversation: it is recorded as unparseable (empty message), as over every other way in", async () => {
    const before = await t.db.db.select({ id: conversation.id }).from(conversation);
    const d = smtpDialog();
    try {
      await readyForData(d);
      expect(await d.command(".")).toMatch(/^250/);
    } finally {
      d.socket.end();
    }
    const after = await t.db.db.select({ id: conversation.id }).from(conversation);
    expect(after).toHaveLength(before.length);
    const rows = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.detail, "empty message"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ reason: "unparseable" });
  });

  it("stores one message when one mail is addressed to two of our addresses", async () => {
    const second = await createQueueWithAddress(t.db.db, t.tenantId, { address: "sales@acme.test" });
    await send("help@acme.test, sales@acme.test", { messageId: "<both@customer.example>" });
    const rows = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "both@customer.example"));
    expect(rows).toHaveLength(1);
    expect([addr.addressId, second.addressId]).toContain(rows[0]!.addressId);
  });

  it("answers 451 while the tenant is over its processing limit and accepts again below it", async () => {
    const open = await t.db.db
      .select({ id: conversation.id })
      .from(conversation)
      .where(eq(conversation.tenantId, t.tenantId));
    await t.db.db
      .update(tenant)
      .set({ processingLimit: open.length - 1 })
      .where(eq(tenant.id, t.tenantId));
    await expect(send("help@acme.test")).rejects.toMatchObject({ responseCode: 451 });
    await t.db.db
      .update(tenant)
      .set({ processingLimit: open.length + 10 })
      .where(eq(tenant.id, t.tenantId));
    expect((await send("help@acme.test")).response).toMatch(/^250/);
    await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
  });

  it("holds the processing limit against deliveries in parallel: only the room left gets 250", async () => {
    // 20 connections at once (a sending MTA delivers in parallel) all passed the check at
    // RCPT TO and took a tenant with a limit of 5 to 20 open conversations (probe, session 16).
    const openNow = async () =>
      (
        await t.db.db
          .select({ id: conversation.id })
          .from(conversation)
          .where(
            and(
              eq(conversation.tenantId, t.tenantId),
              notInArray(conversation.status, ["RESOLVED", "CLOSED"]),
            ),
          )
      ).length;
    const before = await openNow();
    const limit = before + 4; // room for 5: ingest goes on while at most `limit` are open
    await t.db.db.update(tenant).set({ processingLimit: limit }).where(eq(tenant.id, t.tenantId));
    try {
      const codes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          send("help@acme.test", { messageId: `<flood-${i}@customer.example>`, subject: `Flood ${i}` }).then(
            (r) => Number(r.response.slice(0, 3)),
            (e: { responseCode?: number }) => e.responseCode ?? 0,
          ),
        ),
      );
      expect(codes.filter((c) => c === 250)).toHaveLength(5);
      expect(codes.filter((c) => c === 451)).toHaveLength(15);
      expect(await openNow()).toBe(limit + 1);
    } finally {
      await t.db.db.update(tenant).set({ processingLimit: null }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("answers 451 while the tenant's email channel is switched off, so the sender retries, and accepts again after", async () => {
    await t.db.db.update(tenant).set({ emailEnabled: false }).where(eq(tenant.id, t.tenantId));
    try {
      await expect(
        send("help@acme.test", { messageId: "<paused-1@customer.example>" }),
      ).rejects.toMatchObject({
        responseCode: 451,
      });
    } finally {
      await t.db.db.update(tenant).set({ emailEnabled: true }).where(eq(tenant.id, t.tenantId));
    }
    expect((await send("help@acme.test", { messageId: "<paused-1@customer.example>" })).response).toMatch(
      /^250/,
    );
  });

  it("keeps a delivery report out of conversations", async () => {
    const before = await t.db.db.select({ id: conversation.id }).from(conversation);
    const report = buildDeliveryReport("help@acme.test");
    await transport().sendMail({ envelope: { from: "", to: "help@acme.test" }, raw: report });
    const after = await t.db.db.select({ id: conversation.id }).from(conversation);
    expect(after.length).toBe(before.length);
    const reports = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.reason, "delivery_report"));
    expect(reports).toHaveLength(1);
  });

  it("undoes dot-stuffing and finds the end of DATA however the bytes are split across TCP writes", async () => {
    // Lines that start with a dot arrive dot-stuffed (RFC 5321 §4.5.2); one line is a lone
    // dot, one is dots only, one dot sits right after a chunk boundary.
    const body = [".leading dot", ".", "..", "a.b", ".end."].join("\r\n");
    const mail =
      "From: Carol <carol@customer.example>\r\nTo: help@acme.test\r\nSubject: Dots\r\n" +
      `Message-ID: <dots-1@customer.example>\r\n\r\n${body}\r\n`;
    const stuffed = mail.replace(/^\./gm, "..");
    const { socket, reply } = smtpDialog();
    try {
      expect(await reply()).toMatch(/^220/);
      for (const cmd of [
        "EHLO client.example",
        "MAIL FROM:<carol@customer.example>",
        "RCPT TO:<help@acme.test>",
      ]) {
        socket.write(`${cmd}\r\n`);
        expect(await reply()).toMatch(/^250/);
      }
      socket.write("DATA\r\n");
      expect(await reply()).toMatch(/^354/);
      // A few bytes per write, each flushed on its own, so dots, line ends and the
      // terminator straddle the chunks the server reads.
      const wire = `${stuffed}.\r\n`;
      for (let i = 0; i < wire.length; i += 3) {
        socket.write(wire.slice(i, i + 3));
        await new Promise((r) => setImmediate(r));
      }
      expect(await reply()).toMatch(/^250/);
      socket.write("QUIT\r\n");
    } finally {
      socket.end();
    }
    const [m] = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "dots-1@customer.example"));
    expect(m!.text).toBe(`${body.replaceAll("\r\n", "\n")}\n`);
    const [raw] = await t.db.db.select().from(rawMessage).where(eq(rawMessage.id, m!.rawMessageId!));
    // As received, behind the trace lines of this delivery.
    const stored = raw!.data.toString("utf8");
    expect(stored.endsWith(mail)).toBe(true);
    expect(stored.slice(0, -mail.length)).toMatch(/^Return-Path: <[^>]*>\r\nReceived: [\s\S]*\r\n$/);
  });

  it("adds Return-Path and Received (RFC 5321 §4.4): the envelope sender, the client's name and IP, this server; <> for a bounce", async () => {
    const d = smtpDialog();
    try {
      expect(await d.reply()).toMatch(/^220/);
      await d.command("EHLO relay.customer.example");
      for (const [from, id] of [
        ["bounces+42@lists.customer.example", "trace-1"],
        ["", "trace-2"],
      ] as const) {
        expect(await d.command(`MAIL FROM:<${from}>`)).toMatch(/^250/);
        expect(await d.command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
        expect(await d.command("DATA")).toMatch(/^354/);
        d.socket.write(
          `From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Trace\r\nMessage-ID: <${id}@customer.example>\r\n\r\nHi\r\n`,
        );
        expect(await d.command(".")).toMatch(/^250/);
      }
    } finally {
      d.socket.end();
    }
    const rawOf = async (id: string) => {
      const [m] = await t.db.db.select().from(message).where(eq(message.messageIdHeader, id));
      const [raw] = await t.db.db.select().from(rawMessage).where(eq(rawMessage.id, m!.rawMessageId!));
      return raw!.data.toString("utf8");
    };
    const first = await rawOf("trace-1@customer.example");
    expect(first).toMatch(
      /^Return-Path: <bounces\+42@lists\.customer\.example>\r\nReceived: from relay\.customer\.example \(\[(127\.0\.0\.1|::ffff:127\.0\.0\.1)\]\)\r\n\tby \S+ \(Switchboard\) with ESMTP id \S+;\r\n\t\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\nFrom: carol@customer\.example\r\n/,
    );
    expect(await rawOf("trace-2@customer.example")).toMatch(/^Return-Path: <>\r\n/);
    // After HELO (not EHLO) the protocol is SMTP (RFC 3848); the date is the engine's clock's.
    const h = smtpDialog();
    try {
      expect(await h.reply()).toMatch(/^220/);
      await h.command("HELO old.customer.example");
      await h.command("MAIL FROM:<carol@customer.example>");
      expect(await h.command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
      expect(await h.command("DATA")).toMatch(/^354/);
      h.socket.write(
        "From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Trace\r\nMessage-ID: <trace-3@customer.example>\r\n\r\nHi\r\n",
      );
      expect(await h.command(".")).toMatch(/^250/);
    } finally {
      h.socket.end();
    }
    const third = await rawOf("trace-3@customer.example");
    expect(third).toMatch(/\(Switchboard\) with SMTP id /);
    const [m3] = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "trace-3@customer.example"));
    const stamped = new Date(/;\r\n\t([^\r]+)\r\n/.exec(third)![1]!);
    expect(Math.abs(stamped.getTime() - m3!.receivedAt.getTime())).toBeLessThan(2000);
  });

  it("a mail without a Message-ID sent again (a lost 250) stays one message: its key is the bytes as sent, without our trace lines", async () => {
    const mail =
      "From: dora@customer.example\r\nTo: help@acme.test\r\nSubject: No id at all\r\n\r\nPlease call me.\r\n";
    for (let attempt = 0; attempt < 2; attempt++) {
      const d = smtpDialog();
      try {
        await readyForData(d, { helo: "relay.customer.example", from: "dora@customer.example" });
        d.socket.write(mail);
        expect(await d.command(".")).toMatch(/^250/);
      } finally {
        d.socket.end();
      }
    }
    const rows = await t.db.db.select().from(message).where(eq(message.subject, "No id at all"));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.contentHash).toBe(createHash("sha256").update(mail).digest("hex"));
  });

  it("a rejected mail without a Message-ID sent again stays one rejected record (spam dropped, too many parts); another mail is recorded", async () => {
    await createQueueWithAddress(t.db.db, t.tenantId, {
      address: "drop@acme.test",
      addressFields: { spamRouting: "DROP" },
    });
    const spam = (body: string) =>
      `From: win@spam.example\r\nTo: drop@acme.test\r\nSubject: Norid spam\r\nX-Spam-Flag: YES\r\n\r\n${body}\r\n`;
    const parts = Array.from(
      { length: 501 },
      (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`,
    );
    const tooManyParts =
      "From: eve@customer.example\r\nTo: drop@acme.test\r\nSubject: Norid parts\r\n" +
      'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
      `${parts.join("")}--b--\r\n`;
    // Each twice (the sender lost our 250), then a different mail of each kind.
    for (const mail of [
      spam("Cheap pills"),
      spam("Cheap pills"),
      tooManyParts,
      tooManyParts,
      spam("Other pills"),
    ]) {
      const d = smtpDialog();
      try {
        await readyForData(d, {
          helo: "relay.spam.example",
          from: "win@spam.example",
          rcpt: "drop@acme.test",
        });
        d.socket.write(mail);
        expect(await d.command(".")).toMatch(/^250/);
      } finally {
        d.socket.end();
      }
    }
    const recorded = async (subject: string) =>
      (await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.subject, subject))).map((r) => ({
        reason: r.reason,
        key: r.contentHash,
      }));
    const bodyKey = (mail: string) => createHash("sha256").update(mail).digest("hex");
    expect(await recorded("Norid spam")).toEqual(
      expect.arrayContaining([
        { reason: "spam_dropped", key: bodyKey(spam("Cheap pills")) },
        { reason: "spam_dropped", key: bodyKey(spam("Other pills")) },
      ]),
    );
    expect(await recorded("Norid spam")).toHaveLength(2);
    expect(await recorded("Norid parts")).toEqual([{ reason: "too_many_parts", key: bodyKey(tooManyParts) }]);
    // The raw row's hash is of the bytes it holds (trace lines included), made by the
    // parser off the event loop.
    const [rej] = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.subject, "Norid parts"));
    const [raw] = await t.db.db.select().from(rawMessage).where(eq(rawMessage.id, rej!.rawMessageId!));
    expect(raw!.sha256).toBe(createHash("sha256").update(raw!.data).digest("hex"));
    expect(raw!.data.subarray(raw!.data.length - tooManyParts.length).toString()).toBe(tooManyParts);
  });

  it("a rejected mail with a NUL in its Subject, From or Message-ID keeps its reason and sender, once; a record the database refuses keeps its reason too", async () => {
    const parts = Array.from(
      { length: 501 },
      (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`,
    );
    const tooManyParts = (head: string) =>
      `${head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n${parts.join("")}--b--\r\n`;
    const sendTwice = async (mail: string) => {
      for (let attempt = 0; attempt < 2; attempt++) {
        const d = smtpDialog();
        try {
          await readyForData(d);
          d.socket.write(mail);
          expect(await d.command(".")).toMatch(/^250/);
        } finally {
          d.socket.end();
        }
      }
    };
    const rejectedWith = (column: "subject" | "fromAddress" | "messageIdHeader", value: string) =>
      t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage[column], value));

    // A NUL raw in the Subject and the From, and from an encoded word in the Message-ID.
    await sendTwice(
      tooManyParts(
        "From: nul\u0000@customer.example\r\nSubject: Hel\u0000lo parts\r\n" +
          "Message-ID: <=?utf-8?B?AG51bC0x?=@customer.example>\r\n",
      ),
    );
    const rows = await rejectedWith("subject", "Hello parts");
    expect(rows.map((r) => [r.reason, r.fromAddress, r.messageIdHeader])).toEqual([
      ["too_many_parts", "nul@customer.example", "nul-1@customer.example"],
    ]);

    // The database refusing the record itself: written again without the header fields,
    // with the mail's own reason and the error; sent again, still one record.
    const removeTrap = await refuseMessageInserts(t.db.db, { "Trap parts": "22021" }, "rejected_message");
    try {
      await sendTwice(
        tooManyParts("From: trap@customer.example\r\nSubject: Trap parts\r\nMessage-ID: <trap-1@x>\r\n"),
      );
    } finally {
      await removeTrap();
    }
    const all = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.reason, "too_many_parts"));
    const refused = all.filter((r) => r.detail.includes("refused by test"));
    expect(
      refused.map((r) => [r.subject, r.fromAddress, r.messageIdHeader, r.rawMessageId !== null]),
    ).toEqual([[null, null, null, true]]);
    expect(refused[0]!.detail).toMatch(
      /; the record of it failed without its header fields: refused by test$/,
    );
    expect(refused[0]!.contentHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("finds an address on an internationalised domain whichever form the recipient is written in (smtp-server passes the Unicode form on)", async () => {
    await createQueueWithAddress(t.db.db, t.tenantId, { address: "shop@xn--mnchen-3ya.test" });
    const d = smtpDialog();
    try {
      expect(await d.reply()).toMatch(/^220/);
      await d.command("EHLO sender.example");
      for (const [rcpt, id] of [
        ["shop@münchen.test", "idn-1"],
        ["Shop@XN--MNCHEN-3YA.test", "idn-2"],
      ] as const) {
        expect(await d.command("MAIL FROM:<carol@customer.example> SMTPUTF8")).toMatch(/^250/);
        expect(await d.command(`RCPT TO:<${rcpt}>`)).toMatch(/^250/);
        expect(await d.command("DATA")).toMatch(/^354/);
        d.socket.write(
          `From: carol@customer.example\r\nTo: ${rcpt}\r\nSubject: IDN\r\nMessage-ID: <${id}@customer.example>\r\n\r\nHi\r\n`,
        );
        expect(await d.command(".")).toMatch(/^250/);
      }
      expect(await d.command("MAIL FROM:<carol@customer.example>")).toMatch(/^250/);
      expect(await d.command("RCPT TO:<shop@muenchen.test>")).toMatch(/^550/);
    } finally {
      d.socket.end();
    }
    for (const id of ["idn-1@customer.example", "idn-2@customer.example"]) {
      const [m] = await t.db.db.select().from(message).where(eq(message.messageIdHeader, id));
      expect(m).toBeDefined();
    }
  });

  it("takes mail for postmaster (without a domain, or at a domain it serves) into SMTP_POSTMASTER_ADDRESS; without one, 550", async () => {
    const listener = await startSmtpListener(t.app.engine, {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 512 * 1024,
      postmaster: "help@acme.test",
    });
    const d = smtpDialog(listener.port);
    try {
      expect(await d.reply()).toMatch(/^220/);
      await d.command("EHLO sender.example");
      expect(await d.command("MAIL FROM:<abuse-desk@isp.example>")).toMatch(/^250/);
      expect(await d.command("RCPT TO:<Postmaster>")).toMatch(/^250/);
      expect(await d.command("RCPT TO:<POSTMASTER@acme.test>")).toMatch(/^250/);
      expect(await d.command("RCPT TO:<postmaster@elsewhere.example>")).toMatch(/^550/);
      expect(await d.command("DATA")).toMatch(/^354/);
      d.socket.write(
        "From: abuse-desk@isp.example\r\nTo: postmaster@acme.test\r\nSubject: Abuse report\r\nMessage-ID: <pm-1@isp.example>\r\n\r\nHello postmaster\r\n",
      );
      expect(await d.command(".")).toMatch(/^250/);
    } finally {
      d.socket.end();
      await listener.close();
    }
    const [m] = await t.db.db.select().from(message).where(eq(message.messageIdHeader, "pm-1@isp.example"));
    const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, m!.conversationId));
    expect(c!.queueId).toBe(addr.queueId);
    // The app's own listener has no postmaster address.
    const plain = smtpDialog();
    try {
      expect(await plain.reply()).toMatch(/^220/);
      await plain.command("EHLO sender.example");
      await plain.command("MAIL FROM:<abuse-desk@isp.example>");
      expect(await plain.command("RCPT TO:<postmaster@acme.test>")).toMatch(/^550/);
    } finally {
      plain.socket.end();
    }
  });

  it("refuses MAIL FROM and RCPT TO parameters of extensions it does not offer (555), e.g. DSN's NOTIFY and RET", async () => {
    const d = smtpDialog();
    try {
      expect(await d.reply()).toMatch(/^220/);
      await d.command("EHLO sender.example");
      expect(await d.command("MAIL FROM:<carol@customer.example> FOO=bar")).toMatch(/^555 5\.5\.4 .*FOO/);
      expect(await d.command("MAIL FROM:<carol@customer.example> RET=FULL")).toMatch(/^555 5\.5\.4 .*RET/);
      expect(await d.command("MAIL FROM:<carol@customer.example> BODY=8BITMIME SMTPUTF8 SIZE=100")).toMatch(
        /^250/,
      );
      expect(await d.command("RCPT TO:<help@acme.test> NOTIFY=SUCCESS")).toMatch(/^555 5\.5\.4 .*NOTIFY/);
      expect(await d.command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
    } finally {
      d.socket.end();
    }
  });
  describe("one connection, several transactions", () => {
    let beta: { queueId: string; addressId: string; address: string };
    let betaTenant: string;
    beforeAll(async () => {
      ({ tenantId: betaTenant } = await createTenantWithAdmin(t.db.db, {
        tenantName: "Beta",
        adminEmail: "admin@beta.test",
      }));
      beta = await createQueueWithAddress(t.db.db, betaTenant, { address: "help@beta.test" });
    });

    const mail = (id: string, body = "hello") =>
      `From: Carol <carol@customer.example>\r\nSubject: Transaction ${id}\r\nMessage-ID: <${id}@customer.example>\r\n\r\n${body}\r\n.`;
    const stored = (id: string) =>
      t.db.db
        .select({ tenantId: message.tenantId, addressId: message.addressId })
        .from(message)
        .where(eq(message.messageIdHeader, `${id}@customer.example`));

    it("delivers only to the recipients of its own transaction after RSET", async () => {
      const { socket, reply, command } = smtpDialog();
      try {
        expect(await reply()).toMatch(/^220/);
        expect(await command("EHLO client.example")).toMatch(/^250/);
        expect(await command("MAIL FROM:<carol@customer.example>")).toMatch(/^250/);
        expect(await command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
        expect(await command("RSET")).toMatch(/^250/);
        expect(await command("MAIL FROM:<carol@customer.example>")).toMatch(/^250/);
        expect(await command("RCPT TO:<help@beta.test>")).toMatch(/^250/);
        expect(await command("DATA")).toMatch(/^354/);
        expect(await command(mail("rset-1"))).toMatch(/^250/);
        await command("QUIT");
      } finally {
        socket.end();
      }
      expect(await stored("rset-1")).toEqual([{ tenantId: betaTenant, addressId: beta.addressId }]);
    });

    it("records oversize mail sent without SIZE, refuses it with 552, and the next transaction goes only to its own recipient", async () => {
      const { socket, reply, command } = smtpDialog();
      try {
        expect(await reply()).toMatch(/^220/);
        expect(await command("EHLO client.example")).toMatch(/^250/);
        expect(await command("MAIL FROM:<carol@customer.example>")).toMatch(/^250/);
        expect(await command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
        expect(await command("DATA")).toMatch(/^354/);
        // 1.5 MB against the 512 KB limit, the sender having declared no SIZE.
        const line = `${"z".repeat(998)}\r\n`;
        expect(await command(mail("big-1", line.repeat(1500)))).toMatch(/^552/);
        expect(await command("MAIL FROM:<carol@customer.example>")).toMatch(/^250/);
        expect(await command("RCPT TO:<help@beta.test>")).toMatch(/^250/);
        expect(await command("DATA")).toMatch(/^354/);
        expect(await command(mail("after-big-1"))).toMatch(/^250/);
        await command("QUIT");
      } finally {
        socket.end();
      }
      expect(await stored("big-1")).toEqual([]);
      const [rej] = await t.db.db
        .select()
        .from(rejectedMessage)
        .where(eq(rejectedMessage.messageIdHeader, "big-1@customer.example"));
      expect(rej).toMatchObject({
        tenantId: t.tenantId,
        addressId: addr.addressId,
        reason: "oversize",
        fromAddress: "carol@customer.example",
        subject: "Transaction big-1",
        rawMessageId: null,
      });
      expect(rej!.sizeBytes).toBeGreaterThan(1500 * 1000);
      expect(await stored("after-big-1")).toEqual([{ tenantId: betaTenant, addressId: beta.addressId }]);
    });
  });
});

describe("inbound SMTP listener: memory and connection limits", () => {
  it("holds at most maxBufferedBytes of mail: a message past it gets 451, and what a message held is released when it is answered or its client goes away", async () => {
    const listener = await startSmtpListener(t.app.engine, {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 512 * 1024,
      maxBufferedBytes: 600 * 1024,
      maxClients: 4,
    });
    const open = async (n: number) => {
      const d = smtpDialog(listener.port);
      await readyForData(d);
      return Object.assign(d, { n });
    };
    // ~400 KB each: one fits the 600 KB budget, two at once do not.
    const body = (id: string) =>
      `From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Big ${id}\r\n` +
      `Message-ID: <${id}@customer.example>\r\n\r\n${`${"x".repeat(998)}\r\n`.repeat(400)}`;
    const settle = () => new Promise((r) => setTimeout(r, 1000));
    try {
      const a = await open(1);
      const b = await open(2);
      a.socket.write(body("budget-a")); // received, not finished: held
      await settle();
      b.socket.write(body("budget-b"));
      expect(await b.command(".")).toMatch(/^451 4\.3\.1/);
      expect(await a.command(".")).toMatch(/^250/);
      // A client that goes away mid-message gives its share back.
      const d = await open(4);
      d.socket.write(body("budget-d"));
      await settle();
      d.socket.destroy();
      await settle();
      const e = await open(5);
      e.socket.write(body("budget-e"));
      expect(await e.command(".")).toMatch(/^250/);
      // b's mail comes again later and is taken then.
      expect(await b.command("MAIL FROM:<carol@customer.example>")).toMatch(/^250/);
      await b.command("RCPT TO:<help@acme.test>");
      await b.command("DATA");
      b.socket.write(body("budget-b"));
      expect(await b.command(".")).toMatch(/^250/);
      const stored = await t.db.db.select({ id: message.messageIdHeader }).from(message);
      const ids = stored.map((m) => m.id).filter((id) => id?.startsWith("budget-"));
      expect(ids.sort()).toEqual([
        "budget-a@customer.example",
        "budget-b@customer.example",
        "budget-e@customer.example",
      ]);
      for (const x of [a, b, e]) x.socket.destroy();
      await settle();

      // Connections past maxClients are turned away with 421.
      const held = [
        smtpDialog(listener.port),
        smtpDialog(listener.port),
        smtpDialog(listener.port),
        smtpDialog(listener.port),
      ];
      for (const h of held) expect(await h.reply()).toMatch(/^220/);
      const fifth = smtpDialog(listener.port);
      expect(await fifth.reply()).toMatch(/^421/);
      for (const h of [...held, fifth]) h.socket.destroy();
    } finally {
      await listener.close();
    }
  });

  it("a message sent a byte per TCP segment holds about its bytes in memory, not ~240 times them, and arrives whole", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const memory = () => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const N = 50_000;
    const d = smtpDialog();
    try {
      await readyForData(d);
      d.socket.setNoDelay(true);
      d.socket.write("From: carol@customer.example\r\nSubject: A byte at a time\r\n\r\n");
      await new Promise((r) => setTimeout(r, 200));
      const before = memory();
      for (let i = 0; i < N; i++) {
        d.socket.write(i % 100 === 99 ? "\n" : "y");
        await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setTimeout(r, 500));
      const grown = memory() - before;
      // Before: ~240 bytes per byte (a Buffer and a give-back function for each). The
      // margin is for the rest of the process, which runs meanwhile.
      expect(grown).toBeLessThan(20 * N);
      expect(await d.command("\r\n.")).toMatch(/^250/);
    } finally {
      d.socket.end();
    }
    const [m] = await t.db.db.select().from(message).where(eq(message.subject, "A byte at a time"));
    expect(m!.text.replaceAll("\n", "")).toBe("y".repeat(N - N / 100));
  });

  it("a message bigger than the buffer budget but within the size limit is still taken (the budget never goes below one message)", async () => {
    const listener = await startSmtpListener(t.app.engine, {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 512 * 1024,
      maxBufferedBytes: 256 * 1024,
    });
    const d = smtpDialog(listener.port);
    try {
      await readyForData(d);
      d.socket.write(
        "From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Over the budget\r\n" +
          `Message-ID: <over-budget@customer.example>\r\n\r\n${`${"y".repeat(998)}\r\n`.repeat(300)}`,
      );
      expect(await d.command(".")).toMatch(/^250/);
    } finally {
      d.socket.destroy();
      await listener.close();
    }
  });

  it("bounds slow clients: connections per IP address, the time one message's DATA may take, the time a session may idle between mails", async () => {
    const listener = await startSmtpListener(t.app.engine, {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 512 * 1024,
      maxClients: 10,
      maxClientsPerIp: 2,
      dataTimeoutMs: 1500,
      sessionTimeoutMs: 2500,
    });
    const closed = (d: ReturnType<typeof smtpDialog>) =>
      d.socket.closed ? Promise.resolve() : once(d.socket, "close").then(() => {});
    try {
      // Per IP: a third connection from the same address is turned away at once.
      const a = smtpDialog(listener.port);
      const b = smtpDialog(listener.port);
      expect(await a.reply()).toMatch(/^220/);
      expect(await b.reply()).toMatch(/^220/);
      const c = smtpDialog(listener.port);
      expect(await c.reply()).toMatch(/^421 4\.7\.0/);
      await closed(c);

      // DATA that trickles in, one line every 200 ms: cut off at its deadline, nothing stored,
      // nothing left held; the place it took is free again.
      await a.command("EHLO slow.example");
      await a.command("MAIL FROM:<carol@customer.example>");
      expect(await a.command("RCPT TO:<help@acme.test>")).toMatch(/^250/);
      expect(await a.command("DATA")).toMatch(/^354/);
      a.socket.write(
        "From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Slow\r\nMessage-ID: <slowloris@customer.example>\r\n\r\n",
      );
      const started = Date.now();
      const trickle = setInterval(() => {
        if (!a.socket.destroyed) a.socket.write("still here\r\n");
      }, 200);
      try {
        expect(await a.reply()).toMatch(/^421 4\.4\.2/);
        await closed(a);
      } finally {
        clearInterval(trickle);
      }
      expect(Date.now() - started).toBeLessThan(5000);
      const [m] = await t.db.db
        .select()
        .from(message)
        .where(eq(message.messageIdHeader, "slowloris@customer.example"));
      expect(m).toBeUndefined();
      const again = smtpDialog(listener.port);
      expect(await again.reply()).toMatch(/^220/);

      // A session that only NOOPs: closed with 421 once it has lasted sessionTimeoutMs.
      await b.command("EHLO idle.example");
      const idleSince = Date.now();
      const answers: string[] = [];
      b.socket.write("NOOP\r\n");
      while (!b.socket.destroyed && Date.now() - idleSince < 6000) {
        const next = await Promise.race([b.reply(), once(b.socket, "close").then(() => "")]);
        if (next) answers.push(next);
        if (!next || /^421/.test(next)) break;
        await new Promise((r) => setTimeout(r, 200));
        if (!b.socket.destroyed) b.socket.write("NOOP\r\n");
      }
      // A reply that came in while the loop slept is still queued in the dialog.
      if (!/^421/.test(answers.at(-1) ?? "")) {
        const queued = await Promise.race([
          b.reply(),
          new Promise<string>((r) => setTimeout(() => r(""), 200)),
        ]);
        if (queued) answers.push(queued);
      }
      expect(answers.at(-1)).toMatch(/^421 4\.4\.2/);
      expect(answers.slice(0, -1).every((x) => /^250/.test(x))).toBe(true);
      expect(Date.now() - idleSince).toBeLessThan(5000);
      again.socket.destroy();
    } finally {
      await listener.close();
    }
  });

  it("a session past its lifetime is not cut off while its message is being ingested: the 250 comes first", async () => {
    const listener = await startSmtpListener(t.app.engine, {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 512 * 1024,
      sessionTimeoutMs: 1000,
    });
    const lock = await t.db.sql.reserve();
    const d = smtpDialog(listener.port);
    try {
      await readyForData(d);
      // The ingest waits for this lock, past the session's lifetime.
      await lock`BEGIN`;
      await lock`LOCK TABLE message IN EXCLUSIVE MODE`;
      d.socket.write(
        "From: carol@customer.example\r\nTo: help@acme.test\r\nSubject: Slow ingest\r\nMessage-ID: <slow-ingest@customer.example>\r\n\r\nHi\r\n.\r\n",
      );
      await new Promise((r) => setTimeout(r, 2000));
      await lock`COMMIT`;
      expect(await d.reply()).toMatch(/^250/);
      // Then the session ends.
      const next = await Promise.race([d.reply(), new Promise<string>((r) => setTimeout(() => r(""), 8000))]);
      expect(next).toMatch(/^421 4\.4\.2/);
    } finally {
      await lock`ROLLBACK`.catch(() => {});
      lock.release();
      d.socket.destroy();
      await listener.close();
    }
  });
});

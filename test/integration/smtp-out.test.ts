import { simpleParser } from "mailparser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRawMime, classifySmtpError, SmtpSender, verifySmtp } from "../../src/connectors/smtp-out.js";
import type { SmtpTlsMode } from "../../src/engine/domain.js";
import type { ComposedMail } from "../../src/engine/outbound/compose.js";
import { compose } from "../../src/engine/outbound/compose.js";
import type { SendFailure, SendResult, SmtpSettings } from "../../src/engine/outbound/sender.js";
import type { SmtpSink } from "../helpers/smtp-sinks.js";
import {
  hasOpenssl,
  startCapturingSink,
  startNoTlsSink,
  startRejectingSink,
  startTempFailSink,
  testCertificate,
} from "../helpers/smtp-sinks.js";

// TLS tests need a certificate minted with the openssl CLI (see test/helpers/smtp-sinks.ts).
const tls = hasOpenssl();

function reply(n = 1, bcc: string[] = ["audit@acme.example"]): ComposedMail {
  return compose({
    kind: "REPLY",
    address: {
      displayName: "ACME Support",
      fromAddress: "support@acme.example",
      replyTo: [],
      bcc,
      ticketFormat: { placement: "END", delimiter: "SQUARE" },
      signaturePolicy: "NONE",
      historyPolicy: "NEVER",
      templateHtml: null,
    },
    subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
    conversation: {
      ticketNumber: 7,
      subject: "Broken widget",
      isFirstReply: false,
      messages: [
        {
          messageId: "<cust@customer.example>",
          from: { name: "Carla", address: "carla@customer.example" },
          date: new Date("2024-03-01T10:00:00Z"),
          text: "Help",
          html: null,
        },
      ],
    },
    agent: { name: "Ann", alias: null, email: "ann@acme.example" },
    companyName: "ACME",
    signature: null,
    body: { html: `<p>Reply number ${n}</p>` },
    messageIdDomain: "mail.acme.example",
    now: new Date("2024-03-02T10:00:00Z"),
  });
}

function settings(
  port: number,
  tlsMode: SmtpTlsMode = "NONE",
  extra: Partial<SmtpSettings> = {},
): SmtpSettings {
  return { host: "127.0.0.1", port, tlsMode, ...(tls ? { ca: testCertificate().cert } : {}), ...extra };
}

function failure(result: SendResult): SendFailure {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result;
}

describe("smtp-out against local sinks", () => {
  const sender = new SmtpSender({ maxConnections: 3 });
  let capturing: SmtpSink;
  let implicit: SmtpSink;
  let noTls: SmtpSink;
  let tempFail: SmtpSink;
  let rejectRcpt: SmtpSink;
  let rejectData: SmtpSink;

  beforeAll(async () => {
    [capturing, implicit, noTls, tempFail, rejectRcpt, rejectData] = await Promise.all([
      startCapturingSink(),
      tls ? startCapturingSink({ implicitTls: true }) : startNoTlsSink(),
      startNoTlsSink(),
      startTempFailSink(2),
      startRejectingSink("RCPT"),
      startRejectingSink("DATA"),
    ]);
  });

  afterAll(async () => {
    await sender.close();
    await Promise.all([capturing, implicit, noTls, tempFail, rejectRcpt, rejectData].map((s) => s.close()));
  });

  it.skipIf(!tls)("delivers over STARTTLS; the sink receives exactly the stored bytes", async () => {
    const mail = reply();
    const raw = await buildRawMime(mail);
    const result = await sender.send(settings(capturing.port, "STARTTLS"), mail, {
      raw,
      envelopeFrom: "bounces@acme.example",
    });
    expect(result).toMatchObject({ ok: true, messageId: mail.messageId, rejected: [] });
    expect(result.ok && result.accepted.sort()).toEqual(["audit@acme.example", "carla@customer.example"]);
    const got = capturing.messages.at(-1);
    expect(got?.secure).toBe(true);
    expect(got?.mailFrom).toBe("bounces@acme.example");
    expect(got?.rcptTo.sort()).toEqual(["audit@acme.example", "carla@customer.example"]);
    // smtp-server strips the SMTP dot-stuffing; the payload equals what we stored.
    expect(got?.raw.equals(raw)).toBe(true);
    const parsed = await simpleParser(got?.raw ?? Buffer.alloc(0));
    expect(parsed.messageId).toBe(mail.messageId);
    expect(parsed.subject).toBe("Re: Broken widget [#7]");
    expect(parsed.inReplyTo).toBe("<cust@customer.example>");
    expect(parsed.html).toContain("Reply number 1");
    expect(parsed.bcc).toBeUndefined();
    expect(got?.raw.toString()).not.toContain("audit@acme.example");
  });

  it.skipIf(!tls)("delivers over implicit TLS (port-465 style)", async () => {
    const result = await sender.send(settings(implicit.port, "TLS"), reply());
    expect(result.ok).toBe(true);
    expect(implicit.messages.at(-1)?.secure).toBe(true);
  });

  it("logs in when the account has credentials", async () => {
    const result = await sender.send(
      settings(noTls.port, "NONE", { user: "acme-user", password: "s3cret" }),
      reply(),
    );
    expect(result.ok).toBe(true);
    expect(noTls.messages.at(-1)?.user).toBe("acme-user");
  });

  it("sends in clear text to a server without TLS when force-TLS is off", async () => {
    const before = noTls.messages.length;
    const result = await sender.send(settings(noTls.port), reply());
    expect(result.ok).toBe(true);
    expect(noTls.messages.length).toBe(before + 1);
    expect(noTls.messages.at(-1)?.secure).toBe(false);
  });

  it("force-TLS: a server that cannot do TLS gets nothing", async () => {
    const before = noTls.attempts;
    const result = failure(await sender.send(settings(noTls.port), reply(), { forceTls: true }));
    expect(result).toMatchObject({ kind: "tls_required", permanent: true });
    expect(noTls.attempts).toBe(before);
  });

  it("STARTTLS mode never falls back to clear text", async () => {
    const before = noTls.attempts;
    const result = failure(await sender.send(settings(noTls.port, "STARTTLS"), reply()));
    expect(result.kind).toBe("tls_required");
    expect(noTls.attempts).toBe(before);
  });

  it.skipIf(!tls)("force-TLS upgrades a plain account when the server offers STARTTLS", async () => {
    const result = await sender.send(settings(capturing.port, "NONE"), reply(), { forceTls: true });
    expect(result.ok).toBe(true);
    expect(capturing.messages.at(-1)?.secure).toBe(true);
  });

  it.skipIf(!tls)("an untrusted certificate is tls_required, not a retry", async () => {
    const before = capturing.attempts;
    const result = failure(
      await sender.send({ host: "127.0.0.1", port: capturing.port, tlsMode: "STARTTLS" }, reply()),
    );
    expect(result).toMatchObject({
      kind: "tls_required",
      permanent: true,
      code: "DEPTH_ZERO_SELF_SIGNED_CERT",
    });
    expect(capturing.attempts).toBe(before);
  });

  it("a 451 is transient, and the mail goes through once the server recovers", async () => {
    const first = failure(await sender.send(settings(tempFail.port), reply()));
    expect(first).toMatchObject({ kind: "transient", permanent: false, responseCode: 451 });
    expect(first.response).toMatch(/^451 4\.3\.0/);
    const second = failure(await sender.send(settings(tempFail.port), reply()));
    expect(second.kind).toBe("transient");
    const third = await sender.send(settings(tempFail.port), reply());
    expect(third.ok).toBe(true);
    expect(tempFail.messages).toHaveLength(1);
    expect(tempFail.attempts).toBe(3);
  });

  it("a 550 to every recipient is permanent", async () => {
    const result = failure(await sender.send(settings(rejectRcpt.port), reply()));
    expect(result).toMatchObject({
      kind: "permanent",
      permanent: true,
      responseCode: 550,
      code: "EENVELOPE",
    });
    expect(rejectRcpt.messages).toHaveLength(0);
  });

  it("a 550 after DATA is permanent", async () => {
    const result = failure(await sender.send(settings(rejectData.port), reply()));
    expect(result).toMatchObject({ kind: "permanent", permanent: true, responseCode: 550 });
    expect(rejectData.messages).toHaveLength(0);
  });

  it("a refused connection is transient", async () => {
    const probe = await startNoTlsSink();
    const port = probe.port;
    await probe.close();
    const result = failure(await sender.send(settings(port), reply()));
    expect(result).toMatchObject({ kind: "transient", permanent: false, responseCode: null });
  });

  it("reuses pooled connections for concurrent sends", async () => {
    const sink = await startNoTlsSink();
    try {
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => sender.send(settings(sink.port), reply(i))),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      expect(sink.messages).toHaveLength(30);
      expect(sink.connections).toBeLessThanOrEqual(3);
      const bodies = await Promise.all(sink.messages.map(async (m) => (await simpleParser(m.raw)).html));
      expect(new Set(bodies).size).toBe(30);
    } finally {
      await sink.close();
    }
  });

  it("verifySmtp: ok, tls_required and transient", async () => {
    expect(await verifySmtp(settings(noTls.port))).toEqual({ ok: true });
    expect(await verifySmtp(settings(noTls.port), { forceTls: true })).toMatchObject({
      ok: false,
      kind: "tls_required",
    });
    if (tls) expect(await verifySmtp(settings(capturing.port, "STARTTLS"))).toEqual({ ok: true });
    expect(await verifySmtp(settings(1))).toMatchObject({ ok: false, kind: "transient" });
  });

  it("refuses to send after close()", async () => {
    const s = new SmtpSender();
    await s.close();
    await expect(s.send(settings(noTls.port), reply())).rejects.toThrow(/closed/);
  });
});

describe("classifySmtpError", () => {
  const err = (props: Record<string, unknown>) =>
    Object.assign(new Error(String(props["message"] ?? "x")), props);

  it.each([
    ["421 service closing", { code: "EPROTOCOL", responseCode: 421 }, "transient", false],
    ["452 insufficient storage", { code: "EENVELOPE", responseCode: 452 }, "transient", false],
    ["503 bad sequence", { code: "EPROTOCOL", responseCode: 503 }, "transient", false],
    ["552 too big", { code: "EMESSAGE", responseCode: 552 }, "permanent", true],
    ["554 rejected", { code: "EMESSAGE", responseCode: 554 }, "permanent", true],
    ["535 bad credentials", { code: "EAUTH", responseCode: 535 }, "auth", true],
    ["454 temporary auth failure", { code: "EAUTH", responseCode: 454 }, "auth", false],
    ["missing credentials", { code: "ENOAUTH" }, "auth", true],
    ["STARTTLS refused", { code: "ETLS", responseCode: 500, command: "STARTTLS" }, "tls_required", true],
    ["REQUIRETLS", { code: "EREQUIRETLS" }, "tls_required", true],
    ["certificate expired", { code: "ESOCKET", originalCode: "CERT_HAS_EXPIRED" }, "tls_required", true],
    ["connection reset", { code: "ESOCKET", originalCode: "ECONNRESET" }, "transient", false],
    ["timeout", { code: "ETIMEDOUT" }, "transient", false],
    ["dns", { code: "EDNS" }, "transient", false],
    ["unknown", {}, "transient", false],
  ])("%s → %s", (_name, props, kind, permanent) => {
    expect(classifySmtpError(err(props))).toMatchObject({ ok: false, kind, permanent });
  });

  it("accepts non-Error throwables", () => {
    expect(classifySmtpError("boom")).toMatchObject({ kind: "transient", message: "boom" });
  });
});

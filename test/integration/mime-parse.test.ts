import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import type { MimeParser } from "../../src/connectors/mime/parse.js";
import { createMimeParser } from "../../src/connectors/mime/parse.js";
import type { ParsedMail, ParseOutcome } from "../../src/engine/ingest/parsed-mail.js";
import { buildLargeMail, buildRawMail } from "../helpers/raw-mail.js";

const parsers: MimeParser[] = [];
function parser(opts: Parameters<typeof createMimeParser>[0] = {}): MimeParser {
  const p = createMimeParser(opts);
  parsers.push(p);
  return p;
}
afterAll(async () => {
  await Promise.all(parsers.map((p) => p.close()));
});

function ok(outcome: ParseOutcome): Extract<ParseOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got ${outcome.reason}: ${outcome.detail}`);
  return outcome;
}

const shared = parser({ poolSize: 2 });

describe("createMimeParser: parsing", () => {
  it("turns a multipart mail into a ParsedMail", async () => {
    const logo = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
    const pdf = Buffer.from("%PDF-1.4 fake");
    const raw = buildRawMail({
      from: '"Müller, Jürgen" <Juergen@Kunde.example>',
      to: "Support <support@acme.example>, other@acme.example",
      subject: "=?UTF-8?B?UmU6IEJlc3RlbGx1bmcgW8OEXQ==?= [#4711]",
      messageId: "abc.123@kunde.example",
      headers: {
        "In-Reply-To": "<out-9@acme.example> (Support's message)",
        References: "<first@kunde.example>\r\n <out-9@acme.example>",
        Cc: "boss@kunde.example",
        "Reply-To": "replies@kunde.example",
        "Auto-Submitted": "no",
        "X-Spam-Status": "No, score=0.1",
        Received: "from a by b; Wed, 01 May 2024 10:00:00 +0000",
      },
      text: "Grüße",
      html: '<p onclick="x()">Grüße <img src="cid:logo@kunde"> <img src="https://t.example/p.gif"></p><script>x()</script>',
      attachments: [
        {
          filename: "logo.png",
          contentType: "image/png",
          content: logo,
          contentId: "logo@kunde",
          inline: true,
        },
        { filename: "Rechnung März.pdf", contentType: "application/pdf", content: pdf },
      ],
    });
    const { mail, sanitized } = ok(await shared.parse(raw));
    expect(mail).toMatchObject<Partial<ParsedMail>>({
      messageId: "abc.123@kunde.example",
      inReplyTo: "out-9@acme.example",
      references: ["first@kunde.example", "out-9@acme.example"],
      from: { address: "Juergen@Kunde.example", name: "Müller, Jürgen" },
      to: [
        { address: "support@acme.example", name: "Support" },
        { address: "other@acme.example", name: "" },
      ],
      cc: [{ address: "boss@kunde.example", name: "" }],
      replyTo: [{ address: "replies@kunde.example", name: "" }],
      subject: "Re: Bestellung [Ä] [#4711]",
      text: "Grüße",
      isDeliveryReport: false,
      deliveryStatus: null,
      receivedCount: 1,
      warnings: [],
      sizeBytes: raw.length,
      rawSha256: createHash("sha256").update(raw).digest("hex"),
    });
    // With a Message-ID the dedupe key covers what the author wrote, not the trace fields.
    expect(mail.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(mail.contentHash).not.toBe(mail.rawSha256);
    expect(mail.date?.toISOString()).toBe("2024-05-01T10:00:00.000Z");
    expect(mail.headers["auto-submitted"]).toEqual(["no"]);
    expect(mail.headers["x-spam-status"]).toEqual(["No, score=0.1"]);
    expect(mail.html).toContain("<script>");
    expect(mail.attachments).toHaveLength(2);
    const [img, doc] = mail.attachments;
    expect(img).toMatchObject({
      filename: "logo.png",
      contentType: "image/png",
      contentId: "logo@kunde",
      inline: true,
      size: logo.length,
    });
    expect(doc).toMatchObject({
      filename: "Rechnung März.pdf",
      contentType: "application/pdf",
      contentId: null,
      inline: false,
    });
    expect(Buffer.isBuffer(doc!.content)).toBe(true);
    expect(doc!.content.equals(pdf)).toBe(true);
    expect(doc!.sha256).toBe(createHash("sha256").update(pdf).digest("hex"));
    expect(sanitized).not.toBeNull();
    expect(sanitized!.html).not.toMatch(/script|onclick/);
    expect(sanitized!.cidRefs).toEqual(["logo@kunde"]);
    expect(sanitized!.remoteResources).toEqual(["https://t.example/p.gif"]);
  });

  it("flags a part inline exactly when the sanitised HTML shows it (cid: image), not by its Content-Disposition", async () => {
    const png = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
    const raw = buildRawMail({
      html:
        '<img src="cid:A7@X"><img src="cid:a%208@x"><img src="cid:scan 3@x">' +
        '<table background="cid:bg@x"><tr><td style="background:url(cid:css@x)">t</td></tr></table>',
      attachments: [
        // Shown, whatever the disposition says (case, URL escapes, spaces as in Content-ID).
        { filename: "a7.png", contentType: "image/png", content: png, contentId: "a7@x" },
        { filename: "a8.png", contentType: "image/png", content: png, contentId: "a 8@x" },
        { filename: "scan3.png", contentType: "image/png", content: png, contentId: "scan 3@x" },
        // Referenced only where the sanitiser drops the reference.
        { filename: "bg.png", contentType: "image/png", content: png, contentId: "bg@x", inline: true },
        { filename: "css.png", contentType: "image/png", content: png, contentId: "css@x", inline: true },
        // Apple Mail: every attachment "inline", referenced nowhere.
        { filename: "invoice.pdf", contentType: "application/pdf", content: png, inline: true },
      ],
    });
    const { mail, sanitized } = ok(await shared.parse(raw));
    expect(Object.fromEntries(mail.attachments.map((a) => [a.filename, a.inline]))).toEqual({
      "a7.png": true,
      "a8.png": true,
      "scan3.png": true,
      "bg.png": false,
      "css.png": false,
      "invoice.pdf": false,
    });
    expect(sanitized!.cidRefs).toEqual(["A7@X", "a 8@x", "scan 3@x"]);
    // Not sanitised (the option off): nothing is shown, so nothing is inline.
    const plain = ok(await parser({ sanitize: false }).parse(raw));
    expect(plain.mail.attachments.filter((a) => a.inline)).toEqual([]);
  });

  it("keys content dedupe on what the author wrote, not on what servers added on the way", async () => {
    const copy = (trace: string, spec: Parameters<typeof buildRawMail>[0] = {}) =>
      Buffer.concat([
        Buffer.from(trace),
        buildRawMail({ subject: "Same mail", messageId: "same@kunde.example", text: "Body", ...spec }),
      ]);
    const parse = async (raw: Buffer) => ok(await shared.parse(raw)).mail;
    // Two delivered copies: each mailbox's server added its own trace fields.
    const a = await parse(
      copy(
        "Return-Path: <k@kunde.example>\r\nDelivered-To: support@acme.example\r\n" +
          "Received: from mx1 by imap1 for <support@acme.example>; Wed, 01 May 2024 10:00:01 +0000\r\n",
      ),
    );
    const b = await parse(
      copy(
        "Return-Path: <k@kunde.example>\r\nDelivered-To: sales@acme.example\r\nX-Spam-Score: 0.3\r\n" +
          "Received: from mx2 by imap2 for <sales@acme.example>; Wed, 01 May 2024 10:00:02 +0000\r\n" +
          "Authentication-Results: mx2; dkim=pass\r\n",
      ),
    );
    expect(a.rawSha256).not.toBe(b.rawSha256);
    expect(a.contentHash).toBe(b.contentHash);
    // What the author wrote differs: a different body or subject is not the same mail.
    const otherBody = await parse(copy("", { text: "Body, edited" }));
    const otherSubject = await parse(copy("", { subject: "Same mail?" }));
    expect(new Set([a.contentHash, otherBody.contentHash, otherSubject.contentHash]).size).toBe(3);
    // Without a Message-ID only the exact bytes count (a resync re-delivers them).
    const bare = (trace: string) =>
      parse(Buffer.concat([Buffer.from(trace), buildRawMail({ messageId: null, text: "Body" })]));
    const [c, d] = [
      await bare("Delivered-To: a@acme.example\r\n"),
      await bare("Delivered-To: b@acme.example\r\n"),
    ];
    expect(c.contentHash).toBe(c.rawSha256);
    expect(c.contentHash).not.toBe(d.contentHash);
  });

  it("records irregularities as warnings instead of failing", async () => {
    const raw = Buffer.from(
      "From: broken\r\nTo: a@acme.example, <<>>\r\nDate: yesterday-ish\r\nSubject: =?x-unknown?Q?abc?=\r\n" +
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla\r\n',
    );
    const { mail } = ok(await shared.parse(raw));
    expect(mail.from).toBeNull();
    expect(mail.date).toBeNull();
    expect(mail.messageId).toBeNull();
    expect(mail.to).toEqual([{ address: "a@acme.example", name: "" }]);
    const w = mail.warnings.join("\n");
    expect(w).toMatch(/missing Message-ID/);
    expect(w).toMatch(/From has no usable address/);
    expect(w).toMatch(/unparseable Date/);
    expect(w).toMatch(/To: 1 unparseable/);
    expect(w).toMatch(/unknown charset "x-klingon"/);
    expect(w).toMatch(/never closed \(truncated/);
  });

  it("takes mail without a header block as all body, also behind a server's trace lines; a broken fold among real fields is left to mailparser", async () => {
    const bodyOnly = ok(
      await shared.parse(Buffer.from("Hi team,\r\n\r\nplease call me back on 555-0100.\r\n")),
    );
    expect(bodyOnly.mail.text).toBe("Hi team,\n\nplease call me back on 555-0100.\n");
    expect(bodyOnly.mail.warnings).toContain("no header block: the whole message is taken as its body");
    const noBlank = ok(await shared.parse(Buffer.from("just a body line\nand another\n")));
    expect(noBlank.mail.text).toBe("just a body line\nand another\n");

    const traced = ok(
      await shared.parse(
        Buffer.from(
          "Return-Path: <carol@customer.example>\r\nReceived: from relay ([192.0.2.1])\r\n\tby switchboard; Mon, 23 Nov 2026 01:00:00 +0000\r\n" +
            "Hi team,\r\n\r\nplease call me back.\r\n",
        ),
      ),
    );
    expect(traced.mail.text).toBe("Hi team,\n\nplease call me back.\n");
    expect(traced.mail.warnings).toContain(
      "header block ends in lines that are no header fields: they are taken as the body",
    );
    expect(traced.mail.receivedCount).toBe(1);

    // A broken fold in the message's own fields is no body.
    const folded = ok(
      await shared.parse(
        Buffer.from(
          "From: carol@customer.example\r\nSubject: Folded\r\nReferences: <a@x.example>, <invalid.   \r\nsomething@x.example>\r\n\r\nBody\r\n",
        ),
      ),
    );
    expect(folded.mail.text).toBe("Body\n");
    expect(folded.mail.subject).toBe("Folded");
    expect(folded.mail.warnings.join(" ")).not.toMatch(/taken as (its|the) body/);
  });

  it("parses an RFC 3464 delivery report", async () => {
    const raw = Buffer.from(
      [
        "From: Mail Delivery System <MAILER-DAEMON@mx.example>",
        "To: support@acme.example",
        "Subject: Undelivered Mail Returned to Sender",
        "Date: Wed, 01 May 2024 10:00:00 +0000",
        "Message-ID: <dsn-1@mx.example>",
        "Auto-Submitted: auto-replied",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        "",
        "--r",
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        "--r",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example",
        "Original-Envelope-Id: env-77",
        "",
        "Final-Recipient: rfc822; gone@customer.example",
        "Original-Recipient: rfc822;gone@customer.example",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.customer.example",
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@customer.example>: user unknown",
        "",
        "--r",
        "Content-Type: text/rfc822-headers",
        "",
        "From: support@acme.example",
        "Message-ID: <out-42@acme.example>",
        "Subject: Your ticket",
        "",
        "--r--",
        "",
      ].join("\r\n"),
    );
    const { mail } = ok(await shared.parse(raw));
    expect(mail.isDeliveryReport).toBe(true);
    expect(mail.deliveryStatus).toEqual({
      reportingMta: "mx.example",
      originalEnvelopeId: "env-77",
      originalMessageId: "out-42@acme.example",
      recipients: [
        {
          finalRecipient: "gone@customer.example",
          originalRecipient: "gone@customer.example",
          action: "failed",
          status: "5.1.1",
          diagnosticCode: "550 5.1.1 <gone@customer.example>: user unknown",
          remoteMta: "mx.customer.example",
        },
      ],
    });
    expect(mail.text).toContain("could not be delivered");
  });

  it("keeps results apart under concurrency", async () => {
    const raws = Array.from({ length: 40 }, (_, i) =>
      buildRawMail({ subject: `msg ${i}`, messageId: `m${i}@x.example` }),
    );
    const outcomes = await Promise.all(raws.map((r) => shared.parse(r)));
    outcomes.forEach((o, i) => {
      const { mail } = ok(o);
      expect(mail.subject).toBe(`msg ${i}`);
      expect(mail.messageId).toBe(`m${i}@x.example`);
    });
  });

  it("does not consume the caller's buffer", async () => {
    const raw = buildRawMail({ subject: "keep me" });
    const copy = Buffer.from(raw);
    ok(await shared.parse(raw));
    expect(raw.equals(copy)).toBe(true);
  });
});

describe("createMimeParser: limits", () => {
  it("rejects oversize mail before parsing", async () => {
    const p = parser({ maxBytes: 1000 });
    const raw = buildRawMail({ text: "x".repeat(2000), messageId: "big@customer.example" });
    expect(await p.parse(raw)).toEqual({
      ok: false,
      reason: "oversize",
      detail: `message of ${raw.length} bytes exceeds the limit of 1000`,
      sizeBytes: raw.length,
      headline: { messageId: "big@customer.example", from: "alice@customer.example", subject: "Hello" },
      // Its key without a Message-ID: the size and the first 64 KB (all that SMTP keeps).
      contentHash: createHash("sha256").update(`oversize ${raw.length}\n`).update(raw).digest("hex"),
    });
    // Over SMTP our trace lines in front are neither counted nor in the key.
    const trace = Buffer.from("Received: from x by y; Mon, 23 Nov 2026 05:00:00 +0000\r\n");
    const traced = await parser({ maxBytes: raw.length }).parse(Buffer.concat([trace, raw]), {
      traceBytes: trace.length,
    });
    expect(traced.ok).toBe(true);
    const over = await p.parse(Buffer.concat([trace, raw]), { traceBytes: trace.length });
    expect(over).toMatchObject({ reason: "oversize", sizeBytes: raw.length });
    expect(over.ok === false && over.contentHash).toBe(
      createHash("sha256").update(`oversize ${raw.length}\n`).update(raw).digest("hex"),
    );
  });

  it("rejects too many MIME parts", async () => {
    const p = parser({ maxParts: 10 });
    const attachments = Array.from({ length: 20 }, (_, i) => ({
      filename: `f${i}.txt`,
      contentType: "text/plain",
      content: Buffer.from(`file ${i}`),
    }));
    const outcome = await p.parse(buildRawMail({ attachments }));
    expect(outcome).toMatchObject({ ok: false, reason: "too_many_parts" });
    // 5 parts are fine under the same limit.
    ok(await p.parse(buildRawMail({ attachments: attachments.slice(0, 5) })));
  });

  it("rejects a huge top-level header block", async () => {
    const p = parser({ maxHeaderBytes: 4096 });
    const raw = buildRawMail({ headers: { "X-Filler": "a".repeat(10_000) }, subject: "Filled" });
    // What the header says of its sender is kept for the rejected record.
    expect(await p.parse(raw)).toMatchObject({
      ok: false,
      reason: "header_too_large",
      headline: { from: "alice@customer.example", subject: "Filled" },
    });
  });

  it("rejects a huge header block inside a part", async () => {
    const p = parser({ maxHeaderBytes: 4096 });
    const raw = Buffer.from(
      'From: a@b.example\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' +
        `Content-Type: text/plain\r\nX-Filler: ${"a".repeat(10_000)}\r\n\r\nhi\r\n--b--\r\n`,
    );
    expect(await p.parse(raw)).toMatchObject({ ok: false, reason: "header_too_large" });
  });

  it("rejects empty input as unparseable", async () => {
    expect(await shared.parse(Buffer.alloc(0))).toMatchObject({
      ok: false,
      reason: "unparseable",
      detail: "empty message",
    });
    expect(await shared.parse(Buffer.from("\r\n\r\n"))).toMatchObject({ ok: false, reason: "unparseable" });
  });

  it("times out a slow parse, replaces the worker and carries on", async () => {
    const p = parser({ poolSize: 1 });
    // Warm up so the measured parse is not the worker's start-up.
    ok(await p.parse(buildRawMail()));
    const big = buildLargeMail(20 * 1024 * 1024);
    const started = Date.now();
    // Nothing parses 20 MB in 20 ms; the per-call limit keeps the test independent of CPU speed.
    const outcome = await p.parse(big, { timeoutMs: 20 });
    expect(outcome).toMatchObject({ ok: false, reason: "timeout", sizeBytes: big.length });
    // On Linux the limit is counted in the worker thread's CPU time (see parse.ts).
    if (!outcome.ok) {
      expect(outcome.detail).toMatch(
        process.platform === "linux"
          ? /^parse timeout: limit 20 ms, spent \d+ ms CPU in \d+ ms$/
          : /^parse timeout: limit 20 ms, spent \d+ ms/,
      );
    }
    expect(Date.now() - started).toBeLessThan(5000);
    // The next message gets a fresh worker and the default limit.
    const after = ok(await p.parse(buildRawMail({ subject: "after the timeout" })));
    expect(after.mail.subject).toBe("after the timeout");
  });

  it("applies the parser-wide time limit", async () => {
    const p = parser({ poolSize: 1, timeoutMs: 20 });
    expect(await p.parse(buildLargeMail(20 * 1024 * 1024))).toMatchObject({ ok: false, reason: "timeout" });
  });

  it("parses a ~39 MB plain-text body within the default limits", async () => {
    const p = parser({ poolSize: 1 });
    const text = "word ".repeat(7_800_000);
    const outcome = await p.parse(buildRawMail({ text }));
    expect(ok(outcome).mail.text.trimEnd()).toBe(text.trimEnd());
  });
});

describe("createMimeParser: hostile input", () => {
  it("a References field with 40,000 ids parses quickly and keeps the thread's root and the newest 99", async () => {
    const ids = Array.from({ length: 40_000 }, (_, i) => `<r${i}@x.example>`).join(" ");
    const started = Date.now();
    const { mail } = ok(await shared.parse(buildRawMail({ headers: { References: ids } })));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(mail.references).toHaveLength(100);
    expect(mail.references[0]).toBe("r0@x.example");
    expect(mail.references[1]).toBe("r39901@x.example");
    expect(mail.references[99]).toBe("r39999@x.example");
    expect(mail.warnings.join("\n")).toMatch(/only the first and the newest 99/);
  });

  it("deeply nested multiparts end as a result, not a crash", async () => {
    const depth = 300;
    let body = "Content-Type: text/plain\r\n\r\ninnermost\r\n";
    for (let i = depth; i > 0; i--) {
      body = `Content-Type: multipart/mixed; boundary="n${i}"\r\n\r\n--n${i}\r\n${body}--n${i}--\r\n`;
    }
    const raw = Buffer.from(`From: a@b.example\r\nSubject: nested\r\n${body}`);
    const outcome = await shared.parse(raw);
    if (outcome.ok) expect(outcome.mail.text).toContain("innermost");
    else expect(["too_many_parts", "unparseable", "timeout"]).toContain(outcome.reason);
  });

  it("a MIME bomb of 5,000 parts is rejected as too_many_parts", async () => {
    const parts = Array.from(
      { length: 5000 },
      (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\n${i}\r\n`,
    ).join("");
    const raw = Buffer.from(
      `From: a@b.example\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n${parts}--b--\r\n`,
    );
    expect(await shared.parse(raw)).toMatchObject({ ok: false, reason: "too_many_parts" });
  });

  it("binary garbage is stored with warnings or rejected, never thrown", async () => {
    const { randomBytes } = await import("node:crypto");
    for (let i = 0; i < 5; i++) {
      const outcome = await shared.parse(randomBytes(50_000));
      if (outcome.ok) expect(outcome.mail.warnings.length).toBeGreaterThan(0);
      else expect(outcome.reason).toBe("unparseable");
    }
  });
});

describe("createMimeParser: loading", () => {
  it("starts its worker under plain tsx too (outside vitest, from another cwd)", async () => {
    // vitest loads this module through its own transformer; production runs under tsx
    // (`npm start`). Both must find and start parse-worker.ts.
    const require = createRequire(import.meta.url);
    const tsxPkg = require.resolve("tsx/package.json");
    const loader = (JSON.parse(readFileSync(tsxPkg, "utf8")) as { exports: Record<string, string> }).exports[
      "."
    ]!;
    const parseUrl = new URL("../../src/connectors/mime/parse.ts", import.meta.url).href;
    const code = `
      import { createMimeParser } from ${JSON.stringify(parseUrl)};
      const p = createMimeParser({ poolSize: 1 });
      const o = await p.parse(Buffer.from("From: a@b.example\\r\\nSubject: via tsx\\r\\n\\r\\nhi\\r\\n"));
      console.log(JSON.stringify({ ok: o.ok, subject: o.ok ? o.mail.subject : o.reason }));
      await p.close();`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", pathToFileURL(join(dirname(tsxPkg), loader)).href, "--input-type=module", "-e", code],
      { cwd: tmpdir(), timeout: 60_000 },
    );
    expect(JSON.parse(stdout.trim())).toEqual({ ok: true, subject: "via tsx" });
  });
});

describe("createMimeParser: lifecycle", () => {
  it("rejects pending work on close and refuses new work", async () => {
    const p = createMimeParser({ poolSize: 1 });
    const pending = expect(p.parse(buildRawMail())).rejects.toThrow("MIME parser is closed");
    await p.close();
    await pending;
    await expect(p.parse(buildRawMail())).rejects.toThrow("MIME parser is closed");
    await p.close();
  });
});

// Speed (event-loop lag during a 40 MB parse, parse throughput) is measured by
// `npm run bench -- ingest`, not asserted here: timed tests fail on a loaded machine.

describe("createMimeParser: input that used to take quadratic time (found by a fuzz probe)", () => {
  // Each was a `timeout` rejection after 10 s of the parser thread's CPU, recorded again on
  // every delivery. With a 3 s limit, each must now be an ordinary parse.
  const mail = (head: string, body: string, type = "text/html") =>
    Buffer.from(
      `From: h@customer.example\r\nTo: support@acme.test\r\nMessage-ID: <q-${Math.random()}@x>\r\n${head}` +
        `MIME-Version: 1.0\r\nContent-Type: ${type}; charset=utf-8\r\n\r\n${body}\r\n`,
    );

  it("HTML nested 100,000 deep: stored, not sanitised, its text by stripping tags", async () => {
    const o = ok(
      await shared.parse(
        mail("Subject: deep\r\n", `${"<div>".repeat(100_000)}deep${"</div>".repeat(100_000)}`),
        {
          timeoutMs: 3000,
        },
      ),
    );
    expect(o.sanitized).toBeNull();
    expect(o.mail.text.trim()).toBe("deep");
    expect(o.mail.warnings).toContain(
      "HTML nested too deeply for the HTML parser; only the text body can be shown",
    );
    // Ordinary nesting is sanitised as before, and so is a long table whose cells, rows and
    // paragraphs leave out their optional end tags (the next one closes them).
    const table = `<table>${"<tr><td><p>cell".repeat(3000)}</table>`;
    expect(ok(await shared.parse(mail("Subject: cells\r\n", table))).sanitized?.html).toContain("cell");
    // Elements between which the optional ones open and close still count: 5,000 deep is
    // within the parser's budget (~12 million steps), 30,000 is not (~450 million).
    const wrapped = ok(
      await shared.parse(mail("Subject: wrapped\r\n", `${"<div><p>a</p>".repeat(5000)}x`), {
        timeoutMs: 3000,
      }),
    );
    expect(wrapped.sanitized?.html).toContain("<p>a</p>");
    const deeper = ok(
      await shared.parse(mail("Subject: deeper\r\n", `${"<div><p>a</p>".repeat(30_000)}x`), {
        timeoutMs: 3000,
      }),
    );
    expect(deeper.sanitized).toBeNull();
    const normal = ok(
      await shared.parse(mail("Subject: ok\r\n", `${"<div>".repeat(900)}fine${"</div>".repeat(900)}`)),
    );
    expect(normal.sanitized?.html).toContain("fine");
    // What the parser nests though a scan of tags took it for flat (session 16 probe): each
    // held a parser thread for its whole limit (10 s) and the mail was rejected as a timeout.
    for (const [subject, body] of [
      ["stray end tags", `${"<b></x>".repeat(100_000)}x`],
      ["self-closing b", `${"<b/>".repeat(330_000)}x`],
      ["quoted >", `${'<b title="></b>">'.repeat(60_000)}x`],
      // What looks like a data: payload inside a tag name (re-probe): counted on the lean
      // copy, each end tag seemed to close its element, and 2 MB held a thread for 7 s.
      ["payload-like tag names", `${"<a=data:;base64,></a=data:;base64,X>".repeat(55_000)}x`],
    ]) {
      const o = ok(await shared.parse(mail(`Subject: ${subject}\r\n`, body!), { timeoutMs: 3000 }));
      expect(o.sanitized, subject).toBeNull();
      expect(o.mail.warnings, subject).toContain(
        "HTML nested too deeply for the HTML parser; only the text body can be shown",
      );
    }
  });

  it("a style of 40,000 unclosed url(, a References of 200,000 '(', an unclosed <script per 10 bytes in huge HTML", async () => {
    const style = ok(
      await shared.parse(mail("Subject: style\r\n", `<p style="${"url(".repeat(40_000)}">x</p>`), {
        timeoutMs: 3000,
      }),
    );
    expect(style.sanitized?.html).toContain("x");
    const refs = ok(
      await shared.parse(
        mail(`Subject: refs\r\nReferences: ${"(".repeat(200_000)}<root@x>\r\n`, "hi", "text/plain"),
        {
          timeoutMs: 3000,
        },
      ),
    );
    expect(refs.mail.subject).toBe("refs");
    // Over maxHtmlChars: text by stripping tags, whose patterns were quadratic too.
    const crude = ok(
      await parser({ maxHtmlChars: 1000 }).parse(
        mail("Subject: crude\r\n", `<b>hi</b>${"<script x".repeat(30_000)}`),
        {
          timeoutMs: 3000,
        },
      ),
    );
    expect(crude.mail.text).toBe("hi");
  });

  it("a pasted 1.6 MB screenshot as a data: image keeps the HTML body; the limit still holds for markup", async () => {
    // The tester's mail (2026-11-23): the data: payload counted against maxHtmlChars, and the
    // whole HTML, image included, was dropped.
    const png = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), randomBytes(1_600_000)]);
    const b64 = (png.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n");
    const html = `<p>Hello, the <b>error</b> is in the screenshot below:</p><p><img src="data:image/png;base64,${b64}"></p><p>Regards, Jane</p>`;
    expect(html.length).toBeGreaterThan(2_000_000);
    const shot = ok(await shared.parse(mail("Subject: shot\r\n", html), { timeoutMs: 5000 }));
    expect(shot.mail.warnings).toEqual(["missing Date"]);
    expect(shot.sanitized?.html).toContain("Regards, Jane");
    const src = /<img src="([^"]*)"/.exec(shot.sanitized!.html)![1]!;
    expect(Buffer.from(src.slice("data:image/png;base64,".length), "base64").equals(png)).toBe(true);
    expect(shot.mail.text.replace(/\n+/g, "\n")).toBe(
      "Hello, the error is in the screenshot below:\nRegards, Jane",
    );
    // Markup over the limit is still not sanitised, with or without data: images beside it.
    const small = parser({ maxHtmlChars: 1000 });
    const image = `<img src='data:image/gif;base64,${"R0lGODlh".repeat(10_000)}'>`;
    expect(ok(await small.parse(mail("Subject: a\r\n", `<p>fine</p>${image}`))).sanitized?.html).toContain(
      "fine",
    );
    const markup = ok(await small.parse(mail("Subject: b\r\n", `${"<b>x</b>".repeat(200)}${image}`)));
    expect(markup.sanitized).toBeNull();
    expect(markup.mail.warnings).toContainEqual(
      expect.stringMatching(
        /^HTML of 16\d\d characters \(data: payloads not counted\) is too large to sanitise/,
      ),
    );
    // Text that merely looks like a payload counts: the exemption is for attribute values.
    const text = ok(
      await small.parse(mail("Subject: c\r\n", `<p>data:image/gif;base64,${"QUJD".repeat(300)}</p>`)),
    );
    expect(text.sanitized).toBeNull();
  });

  it("line ends of bare CR (classic Mac OS) are read as CRLF; the stored bytes and key stay as received", async () => {
    const raw = Buffer.from(
      "From: Old Mac <mac@customer.example>\rTo: support@acme.test\rSubject: old mac mail\r" +
        "Message-ID: <bare-cr@x>\r\rThe body text.\r",
    );
    const o = ok(await shared.parse(raw));
    expect([o.mail.subject, o.mail.from?.address, o.mail.messageId, o.mail.text.trim()]).toEqual([
      "old mac mail",
      "mac@customer.example",
      "bare-cr@x",
      "The body text.",
    ]);
    expect(o.mail.warnings).toContain("line ends are bare CR; read as CRLF");
    expect(o.mail.rawSha256).toBe(createHash("sha256").update(raw).digest("hex"));
  });
});

describe("createMimeParser: quoted-printable with a long run of spaces (libqp patch)", () => {
  it("parses 100,000 spaces inside a line in time, and strips trailing whitespace as before", async () => {
    const body = `start${" ".repeat(100_000)}end=\r\nsoft\ttrailing \t \r\nnext line\r\n`;
    const raw = Buffer.from(
      "From: q@customer.example\r\nTo: support@acme.test\r\nSubject: qp spaces\r\nMessage-ID: <qp-ws@x>\r\n" +
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
        body,
    );
    // A parse timeout after 10 s of the thread's CPU before (25,000 spaces took 1.3 s).
    const o = ok(await shared.parse(raw, { timeoutMs: 3000 }));
    expect(o.mail.text).toBe(`start${" ".repeat(100_000)}endsoft\ttrailing\nnext line\n`);
  });

  it("the patched decoder gives what the original one gave (random lines of spaces, tabs, text and escapes)", async () => {
    const require = createRequire(import.meta.url);
    const libqp = require("libqp") as { decode(s: string): Buffer };
    // libqp 2.1.2's decode as released: the original strip, soft breaks, =XX escapes.
    const released = (s: string): Buffer => {
      const t = s.replace(/[\t ]+$/gm, "").replace(/=(?:\r?\n|$)/g, "");
      const out: number[] = [];
      for (let i = 0; i < t.length; i++) {
        const hex = t.slice(i + 1, i + 3);
        if (t[i] === "=" && /^[\da-fA-F]{2}$/.test(hex)) {
          out.push(Number.parseInt(hex, 16));
          i += 2;
        } else out.push(t.charCodeAt(i));
      }
      return Buffer.from(out);
    };
    const pieces = [" ", "\t", "a", "=\r\n", "\r\n", "\n", "=41", "  \t", "=", "x y"];
    for (let n = 0; n < 500; n++) {
      let s = "";
      for (let i = 0; i < 40; i++) s += pieces[Math.floor(Math.random() * pieces.length)];
      expect([s, libqp.decode(s).toString("latin1")]).toEqual([s, released(s).toString("latin1")]);
    }
  });
});

describe("createMimeParser: text and header fields without a charset (8-bit legacy mail)", () => {
  const LATIN1_WARNING = "text without a charset is not UTF-8; read as windows-1252";
  const head =
    "From: form@customer.example\r\nTo: support@acme.test\r\nSubject: legacy\r\nMessage-ID: <legacy@x>\r\n" +
    "Date: Wed, 01 May 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n";
  /** A message of the given parts (header lines, a blank line, the body), in Latin-1 bytes. */
  const multipart = (...parts: string[]): Buffer =>
    Buffer.from(
      `${head}Content-Type: multipart/mixed; boundary="b"\r\n\r\n${parts.map((p) => `--b\r\n${p}\r\n`).join("")}--b--\r\n`,
      "latin1",
    );
  const parse = async (raw: Buffer): Promise<ParsedMail> => ok(await shared.parse(raw)).mail;

  it("reads Latin-1 text without a Content-Type, or text/plain without a charset, as windows-1252, with a warning", async () => {
    const noType = await parse(Buffer.from(`${head}\r\nSch\xf6ne Gr\xfc\xdfe, M\xfcller\r\n`, "latin1"));
    expect(noType.text).toBe("Schöne Grüße, Müller\n");
    expect(noType.warnings).toContain(LATIN1_WARNING);
    expect(noType.warnings).not.toContain("body contains bytes invalid in its charset");

    const plain = await parse(
      Buffer.from(`${head}Content-Type: text/plain\r\n\r\n\x93Gr\xfc\xdfe\x94 \x80 10\r\n`, "latin1"),
    );
    // windows-1252, not ISO-8859-1: 0x93/0x94/0x80 are quotes and the euro sign.
    expect(plain.text).toBe("“Grüße” € 10\n");
    expect(plain.warnings).toContain(LATIN1_WARNING);
  });

  it("keeps undeclared text that is valid UTF-8 as UTF-8 (per part), without a warning", async () => {
    const mail = await parse(
      multipart(
        `Content-Type: text/plain\r\n\r\n${Buffer.from("Grüße aus Köln", "utf8").toString("latin1")}`,
        "Content-Type: text/plain\r\n\r\nGr\xfc\xdfe aus K\xf6ln",
      ),
    );
    expect(mail.text).toBe("Grüße aus Köln\nGrüße aus Köln");
    const utf8Only = await parse(
      Buffer.from(`${head}\r\n${Buffer.from("Grüße – ok", "utf8").toString("latin1")}\r\n`, "latin1"),
    );
    expect(utf8Only.text).toBe("Grüße – ok\n");
    expect(utf8Only.warnings).not.toContain(LATIN1_WARNING);
  });

  it("reads a us-ascii part with 8-bit bytes as UTF-8 when it is UTF-8, else as windows-1252", async () => {
    const mail = await parse(
      multipart(
        "Content-Type: text/plain; charset=us-ascii\r\n\r\nSch\xf6ne Gr\xfc\xdfe",
        `Content-Type: text/plain; charset="US-ASCII"\r\n\r\n${Buffer.from("Schöne Grüße", "utf8").toString("latin1")}`,
      ),
    );
    expect(mail.text).toBe("Schöne Grüße\nSchöne Grüße");
    expect(mail.warnings).toContain("text declared us-ascii is not UTF-8; read as windows-1252");
    expect(mail.warnings).not.toContain("body contains bytes invalid in its charset");
  });

  it("decodes quoted-printable and base64 bodies without a charset by their decoded bytes", async () => {
    const mail = await parse(
      multipart(
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6ne Gr=FC=DFe=\r\n, M=FCller",
        `Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from("Gr\xfc\xdfe \x93Base64\x94", "latin1").toString("base64")}`,
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nUTF-8: Gr=C3=BC=C3=9Fe",
      ),
    );
    expect(mail.text).toBe("Schöne Grüße, Müller\nGrüße “Base64”\nUTF-8: Grüße");
    expect(mail.warnings).toContain(LATIN1_WARNING);
  });

  it("reads HTML without a header charset by the charset of its <meta>, else as windows-1252", async () => {
    const meta = await parse(
      Buffer.from(
        `${head}Content-Type: text/html\r\n\r\n<html><head><meta charset="windows-1252"><title>x</title></head>` +
          "<body><p>Sch\xf6ne Gr\xfc\xdfe \x93M\xfcller\x94</p></body></html>\r\n",
        "latin1",
      ),
    );
    expect(meta.html).toContain("<p>Schöne Grüße “Müller”</p>");
    expect(meta.text).toBe("Schöne Grüße “Müller”");
    expect(meta.warnings).toContain(
      "HTML text without a charset is not UTF-8; read as windows-1252, the charset of its <meta>",
    );
    expect(meta.warnings).not.toContain("body contains bytes invalid in its charset");

    // The http-equiv form, and a charset windows-1252 would read wrong (KOI8-R: "Привет").
    const koi8 = await parse(
      Buffer.from(
        `${head}Content-Type: text/html\r\n\r\n<!-- <meta charset="iso-8859-2"> --><meta http-equiv="Content-Type" content="text/html; charset=koi8-r">` +
          "<p>\xf0\xd2\xc9\xd7\xc5\xd4</p>\r\n",
        "latin1",
      ),
    );
    expect(koi8.html).toContain("<p>Привет</p>");
    expect(koi8.warnings).toContain(
      "HTML text without a charset is not UTF-8; read as koi8-r, the charset of its <meta>",
    );

    // No meta (or one iconv-lite does not know): windows-1252.
    const bare = await parse(
      Buffer.from(
        `${head}Content-Type: text/html\r\n\r\n<meta charset="x-no-such"><p>Gr\xfc\xdfe</p>\r\n`,
        "latin1",
      ),
    );
    expect(bare.html).toContain("<p>Grüße</p>");
    expect(bare.warnings).toContain(LATIN1_WARNING);
  });

  it("reads raw 8-bit header fields that are not UTF-8 as windows-1252; UTF-8 fields and encoded words as before", async () => {
    const mail = await parse(
      Buffer.from(
        "From: J\xf6rg M\xfcller <joerg@customer.example>\r\nTo: Support <support@acme.test>, Fran\xe7oise <f@acme.test>\r\n" +
          "Cc: \x93Boss\x94 <boss@customer.example>\r\nSubject: R\xfcckfrage zu =?UTF-8?Q?Bestellung_=C3=84?=\r\n" +
          "Message-ID: <raw-latin1@x>\r\nDate: Wed, 01 May 2024 10:00:00 +0000\r\n\r\nBody\r\n",
        "latin1",
      ),
    );
    expect(mail.subject).toBe("Rückfrage zu Bestellung Ä");
    expect(mail.from).toEqual({ address: "joerg@customer.example", name: "Jörg Müller" });
    expect(mail.to).toEqual([
      { address: "support@acme.test", name: "Support" },
      { address: "f@acme.test", name: "Françoise" },
    ]);
    expect(mail.cc).toEqual([{ address: "boss@customer.example", name: "“Boss”" }]);
    expect(mail.warnings).toContain(
      "header fields with 8-bit bytes that are not UTF-8 (from, to, cc, subject); read as windows-1252",
    );
    expect(mail.warnings).not.toContain("Subject contains bytes invalid in its charset");

    // RFC 6532: raw UTF-8 stays UTF-8, with no warning.
    const utf8 = await parse(
      Buffer.from(
        "From: Jörg Müller <joerg@customer.example>\r\nSubject: Rückfrage\r\nMessage-ID: <raw-utf8@x>\r\n" +
          "Date: Wed, 01 May 2024 10:00:00 +0000\r\n\r\nBody\r\n",
        "utf8",
      ),
    );
    expect([utf8.subject, utf8.from?.name]).toEqual(["Rückfrage", "Jörg Müller"]);
    expect(utf8.warnings.join("\n")).not.toMatch(/not UTF-8/);
  });

  it("respects a declared charset even when the bytes do not fit it", async () => {
    const mail = await parse(
      multipart(
        "Content-Type: text/plain; charset=utf-8\r\n\r\nSch\xf6ne",
        "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n\x93quoted\x94 \x80",
        "Content-Type: text/plain\r\n\r\n\x93undeclared\x94 \x80",
      ),
    );
    // Declared UTF-8: U+FFFD as before; declared ISO-8859-1: read as windows-1252 by
    // iconv-lite, as before; undeclared: windows-1252 now.
    expect(mail.text).toBe("Sch\ufffdne\n“quoted” €\n“undeclared” €");
    expect(mail.warnings).toContain("body contains bytes invalid in its charset");
    expect(mail.warnings).toContain(LATIN1_WARNING);
  });

  it("parses a ~39 MB Latin-1 body without a charset within the default limits", async () => {
    const p = parser({ poolSize: 1 });
    const line = "Sch\xf6ne Gr\xfc\xdfe aus K\xf6ln \x96 M\xfcller & S\xf6hne \x80 10\r\n";
    const raw = Buffer.from(`${head}Content-Type: text/plain\r\n\r\n${line.repeat(860_000)}`, "latin1");
    const mail = ok(await p.parse(raw)).mail;
    expect(mail.text.length).toBe((line.length - 1) * 860_000);
    expect(mail.text.slice(0, mail.text.indexOf("\n"))).toBe("Schöne Grüße aus Köln – Müller & Söhne € 10");
    expect(mail.warnings).toContain(LATIN1_WARNING);
  });
});

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createMimeParser } from "../../src/connectors/mime/parse.js";
import { classify } from "../../src/engine/ingest/classify.js";
import type { ParsedMail, ParseOutcome } from "../../src/engine/ingest/parsed-mail.js";
import { PARSE_REJECT_REASONS } from "../../src/engine/ingest/parsed-mail.js";
import { sanitizeHtml } from "../../src/engine/ingest/sanitize.js";
import { decideThread, threadingLookups } from "../../src/engine/ingest/threading.js";

/**
 * Every file of the shared mail corpus (SPEC §3: real-world and broken mail) goes
 * through the real parser pool, classify, sanitize and threading. Each must end as a
 * ParsedMail or a rejection with a reason — never a throw, never a hang.
 */

const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const corpusRoot = [resolve(repoRoot, "../shared/corpus"), "/work/shared/corpus"].find((p) =>
  existsSync(join(p, "mail-gem")),
);
const mailGem = corpusRoot ? join(corpusRoot, "mail-gem") : null;

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => statSync(f).isFile())
    .sort();
}

const files = mailGem ? listFiles(mailGem) : [];
const parser = createMimeParser({ poolSize: 2 });
afterAll(() => parser.close());

const outcomes = new Map<string, ParseOutcome>();
async function outcomeOf(name: string): Promise<ParseOutcome> {
  const cached = outcomes.get(name);
  if (cached) return cached;
  if (!mailGem) throw new Error("corpus missing");
  const o = await parser.parse(readFileSync(join(mailGem, name)));
  outcomes.set(name, o);
  return o;
}
async function mailOf(name: string): Promise<ParsedMail> {
  const o = await outcomeOf(name);
  if (!o.ok) throw new Error(`${name} rejected: ${o.reason} ${o.detail}`);
  return o.mail;
}

describe("mail corpus", () => {
  it("is present", () => {
    // A silently missing corpus would make every test below vacuous.
    expect(mailGem, "shared/corpus/mail-gem not found beside the repo or at /work/shared").not.toBeNull();
    expect(files.length).toBeGreaterThan(90);
  });

  it.each(files.map((f) => [relative(mailGem ?? "", f)]))(
    "%s: parsed or rejected with a reason, classified, sanitised",
    async (name) => {
      // "Never hangs" is the per-test timeout below (the parser's own CPU-time limit
      // rejects a slow parse); a tight wall-clock bound would fail on a loaded machine.
      const outcome = await outcomeOf(name);
      if (!outcome.ok) {
        expect(PARSE_REJECT_REASONS).toContain(outcome.reason);
        expect(outcome.detail).not.toBe("");
        return;
      }
      const { mail, sanitized } = outcome;
      expect(mail.sizeBytes).toBeGreaterThan(0);
      expect(mail.contentHash).toMatch(/^[0-9a-f]{64}$/);
      expect(Array.isArray(mail.warnings)).toBe(true);
      expect(mail.date === null || !Number.isNaN(mail.date.getTime())).toBe(true);
      for (const a of mail.attachments) {
        expect(Buffer.isBuffer(a.content)).toBe(true);
        expect(a.size).toBe(a.content.length);
      }
      const c = classify(mail, {});
      expect(typeof c.bounce).toBe("boolean");
      if (mail.html !== null) {
        const s = sanitizeHtml(mail.html);
        expect(s.html).not.toMatch(/<script|\son\w+="/i);
        expect(sanitized?.html).toBe(s.html);
      }
      const lookups = threadingLookups({ mode: "REFERENCES_THEN_TICKET", ...mail });
      expect(
        decideThread({
          mode: "REFERENCES_THEN_TICKET",
          inReplyTo: mail.inReplyTo,
          references: mail.references,
          subject: mail.subject,
          candidatesByMessageId: [],
          candidatesByTicket: [],
          senderEmail: mail.from?.address ?? null,
        }).kind,
      ).toBe("new");
      expect(lookups.messageIds.length).toBeLessThanOrEqual(50);
    },
    60_000,
  );
});

describe("mail corpus: specific expectations", () => {
  it.each([
    ["multipart_report_emails/multi_address_bounce1.eml", 5, "failed", "5.1.1"],
    ["multipart_report_emails/report_422.eml", 1, "delayed", "4.2.2"],
    ["multipart_report_emails/report_530.eml", 1, "failed", "5.3.0"],
  ])("%s is a delivery report with a parsed status", async (name, recipients, action, status) => {
    const mail = await mailOf(name);
    expect(mail.isDeliveryReport).toBe(true);
    expect(mail.deliveryStatus?.recipients).toHaveLength(recipients);
    expect(mail.deliveryStatus?.recipients[0]).toMatchObject({ action, status });
    expect(classify(mail, {})).toMatchObject({ bounce: true, bounceAction: action, autoSubmitted: true });
  });

  it("a bounce names the message it returns", async () => {
    const mail = await mailOf("multipart_report_emails/multi_address_bounce1.eml");
    expect(mail.deliveryStatus).toMatchObject({
      reportingMta: "lvmail01.LL.com",
      originalMessageId: "118707422.15521266992174819.JavaMail.root@lvmail01",
    });
    expect(mail.deliveryStatus?.recipients[0]?.finalRecipient).toBe("bbbbvhvbbvkjbhfbvbvjhb@gmail.com");
  });

  it.each([
    ["multi_charset/japanese.eml", "まみむめも"],
    ["multi_charset/japanese_iso_2022.eml", "まみむめも"],
    ["rfc6532/utf8_headers.eml", "Säying Hello"],
    ["plain_emails/raw_email.eml", "NOTE: 한국말로 하는 것"],
  ])("%s decodes its subject", async (name, subject) => {
    expect((await mailOf(name)).subject).toBe(subject);
  });

  it("decodes an ISO-2022-JP body", async () => {
    const mail = await mailOf("multi_charset/japanese_iso_2022.eml");
    expect(mail.text).toMatch(/[\u3040-\u30ff]/);
    expect(mail.text).not.toContain("\ufffd");
  });

  it("decodes a Shift_JIS body", async () => {
    const mail = await mailOf("multi_charset/japanese_shift_jis.eml");
    expect(mail.text).toMatch(/[\u3040-\u30ff\u4e00-\u9fff]/);
  });

  it.each([
    ["multi_charset/japanese_attachment.eml", "てすと.txt"],
    ["attachment_emails/attachment_nonascii_filename.eml", /[^\x00-\x7f]/],
    ["attachment_emails/attachment_with_encoded_name.eml", /\S/],
  ])("%s decodes a non-ASCII attachment filename", async (name, filename) => {
    const mail = await mailOf(name);
    const names = mail.attachments.map((a) => a.filename ?? "");
    expect(names.some((n) => (typeof filename === "string" ? n === filename : filename.test(n)))).toBe(true);
    for (const n of names) expect(n).not.toMatch(/=\?[^?]+\?[bq]\?/i);
  });

  it("keeps a PDF attachment byte-exact", async () => {
    const mail = await mailOf("attachment_emails/attachment_pdf.eml");
    const pdf = mail.attachments.find((a) => a.contentType === "application/pdf");
    expect(pdf?.content.subarray(0, 5).toString("latin1")).toBe("%PDF-");
  });

  it.each([
    ["error_emails/bad_date_header.eml", /unparseable Date/],
    ["plain_emails/raw_email_with_bad_date.eml", /unparseable Date/],
    ["error_emails/bad_encoded_subject.eml", /missing From/],
    ["plain_emails/raw_email10.eml", /unknown charset "X-UNKNOWN"/],
    ["mime_emails/raw_email4.eml", /never closed/],
    ["error_emails/multiple_references_with_one_invalid.eml", /References: 2 token/],
  ])("%s is stored with a warning", async (name, warning) => {
    const mail = await mailOf(name);
    expect(mail.warnings.join("\n")).toMatch(warning);
  });

  it("a bad Date is null, not 'now'", async () => {
    expect((await mailOf("error_emails/bad_date_header.eml")).date).toBeNull();
  });

  it("RFC 2822 obsolete syntax: comments in addresses and dates", async () => {
    const mail = await mailOf("rfc2822/example10.eml");
    expect(mail.from?.address).toBe("pete@silly.test");
    expect(mail.date?.toISOString()).toBe("1969-02-14T03:02:00.000Z");
  });

  it("the empty file is rejected with a reason", async () => {
    expect(await outcomeOf("sample_output_multipart")).toMatchObject({ ok: false, reason: "unparseable" });
  });
});

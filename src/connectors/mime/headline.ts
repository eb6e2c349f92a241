import { createRequire } from "node:module";
import { type MailHeadline, normalizeMessageId } from "../../engine/ingest/parsed-mail.js";
import { clip, wellFormed } from "../../engine/text.js";

// mailparser's own copies of iconv-lite and libmime, so charset checks agree with the
// decoder that actually ran (and no extra dependency is declared for them). libmime alone,
// not mailparser, so the main thread can read a headline without loading the parser.
const mailparserRequire = createRequire(createRequire(import.meta.url).resolve("mailparser"));
export const iconv = mailparserRequire("iconv-lite") as {
  encodingExists(name: string): boolean;
  decode(bytes: Buffer, encoding: string): string;
};
export const libmime = mailparserRequire("libmime") as {
  normalizeCharset(charset: string): string;
  decodeWords(value: string): string;
};

/** How much of a message is read for its headline: a header block is rarely larger. */
export const HEADLINE_BYTES = 64 * 1024;

const FIELDS = new Set(["from", "subject", "message-id"]);

/** RFC 2047 encoded words decoded; the value as it is when they cannot be. */
export function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

/** The mailbox of a From value: the bracketed address, else the first token with an "@". */
function fromAddressOf(value: string): string | null {
  const bracketed = /<([^<>\s]+@[^<>\s]+)>/.exec(value);
  const token = bracketed?.[1] ?? value.split(/[\s,;]+/).find((t) => t.includes("@"));
  // No address is longer (RFC 5321 §4.5.3.1); and the trim below is quadratic in a long
  // run of the characters it trims.
  if (!token || token.length > 400) return null;
  const clean = token.replace(/^[<("']+|[>)"']+$/g, "");
  return clean && clean.length <= 320 ? clean : null;
}

/**
 * The fields of a header block (text up to its blank line, or fields alone) as
 * [lower-case name, unfolded value] in their order. A plain line scan that cannot fail.
 */
export function headerFields(block: string): [string, string][] {
  const fields: [string, string][] = [];
  for (const line of block.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return fields;
}

/**
 * Message-ID, From mailbox and Subject of a message that could not be parsed (or was not
 * received whole, e.g. oversize mail cut off at the limit), read from the first
 * `HEADLINE_BYTES` of its header block by a plain line scan that cannot fail: what an admin
 * needs to tell who sent a rejected mail. Only the first of each field counts.
 */
export function headlineOf(raw: Buffer): MailHeadline {
  const head = raw.subarray(0, HEADLINE_BYTES).toString("utf8");
  const end = head.search(/\r?\n\r?\n/);
  const block = end < 0 ? head : head.slice(0, end);
  const found = new Map<string, string>();
  for (const [key, value] of headerFields(block)) {
    if (FIELDS.has(key) && !found.has(key)) found.set(key, value);
  }
  const from = found.get("from");
  const subject = found.get("subject");
  const messageId = found.get("message-id");
  return {
    // Encoded words decoded as the parser does (mime-to-parsed.ts), so both give one id.
    messageId: messageId ? storable(normalizeMessageId(decodeWords(messageId))) : null,
    from: from ? storable(fromAddressOf(decodeWords(from))) : null,
    subject: subject !== undefined ? clip(wellFormed(withoutNul(decodeWords(subject))), 998) : null,
  };
}

// The headline goes into the rejected record's text columns, which cannot hold U+0000: a
// NUL there (raw, or from an encoded word) used to fail the record and turn the mail's
// real reason into `ingest_failed`.
const withoutNul = (s: string): string => s.replaceAll("\u0000", "");
const storable = (s: string | null): string | null => (s === null ? null : wellFormed(withoutNul(s)) || null);

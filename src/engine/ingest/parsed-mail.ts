/**
 * The parsed form of one inbound message as the engine consumes it. The MIME parser
 * (mailparser, in `src/connectors/mime`) produces it; the engine never sees mailparser's
 * own types, so a parser change stays behind this boundary. Everything here survives a
 * structured clone (worker_threads), so no class instances besides Date and Buffer.
 */

import type { SanitizedHtml } from "./sanitize.js";

/** One mailbox from an address header; `name` is "" when the header gave none. */
export interface MailAddress {
  address: string;
  name: string;
}

export interface MailAttachment {
  /** Decoded (RFC 2231 / RFC 2047) file name; null when the part named none. */
  filename: string | null;
  /** Lower-case media type, e.g. "application/pdf". */
  contentType: string;
  /** Decoded size in bytes. */
  size: number;
  /** Content-ID without the angle brackets (RFC 2392), the target of `cid:` links. */
  contentId: string | null;
  /**
   * Shown in the body: the sanitised HTML keeps a `cid:` image naming this part (the first
   * part of each Content-ID), so `inlineHtml` shows it. Content-Disposition alone decides nothing.
   */
  inline: boolean;
  /** Hex SHA-256 of the decoded content: dedupes storage and identifies malware samples. */
  sha256: string;
  content: Buffer;
}

/** One per-recipient block of an RFC 3464 message/delivery-status part. */
export interface DeliveryStatusRecipient {
  /** The address only; the address-type prefix ("rfc822;") is removed. */
  finalRecipient: string | null;
  originalRecipient: string | null;
  /** Lower-case: failed | delayed | delivered | relayed | expanded (RFC 3464 §2.3.3). */
  action: string | null;
  /** The enhanced status code (RFC 3463), e.g. "5.1.1". */
  status: string | null;
  /** As reported, with its type prefix ("smtp; 550 …") removed. */
  diagnosticCode: string | null;
  remoteMta: string | null;
}

export interface DeliveryStatus {
  reportingMta: string | null;
  /** The ENVID we passed in MAIL FROM (RFC 3461), when the reporting MTA kept it. */
  originalEnvelopeId: string | null;
  /**
   * Message-ID of the returned message (from the message/rfc822 or text/rfc822-headers
   * part, or an X-Original-Message-ID field), normalised like `ParsedMail.messageId`.
   * This is how a bounce is matched to the outbound message it reports on.
   */
  originalMessageId: string | null;
  recipients: DeliveryStatusRecipient[];
}

/**
 * Header fields kept verbatim (decoded, unfolded) for classification, rules and audit.
 * Every other header stays only in the raw message.
 */
export const HEADERS_OF_INTEREST = [
  "auto-submitted",
  "precedence",
  "list-id",
  "list-unsubscribe",
  "list-post",
  "x-auto-response-suppress",
  "x-autoreply",
  "x-autorespond",
  "x-loop",
  "x-spam-flag",
  "x-spam-status",
  "x-spam",
  "x-spam-score",
  "x-ses-spam-verdict",
  "x-microsoft-antispam",
  "x-forefront-antispam-report",
  "x-ms-exchange-organization-scl",
  "return-path",
  "sender",
  "content-type",
  "content-language",
  "x-mailer",
  "user-agent",
  "x-original-message-id",
] as const;
export type HeaderOfInterest = (typeof HEADERS_OF_INTEREST)[number];

export interface ParsedMail {
  /** Normalised (see `normalizeMessageId`), without `<>`; null when absent or empty. */
  messageId: string | null;
  /** The first msg-id of In-Reply-To, normalised; null when absent or unparseable. */
  inReplyTo: string | null;
  /** References msg-ids in header order (oldest first), normalised and de-duplicated. */
  references: string[];
  /** First mailbox of From; null when missing or without a usable address. */
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  replyTo: MailAddress[];
  /** Decoded subject; "" when missing. */
  subject: string;
  /** Date header; null when missing or unparseable (never "now" in disguise). */
  date: Date | null;
  /** Plain text body (from text/plain parts, else derived from the HTML); "" if none. */
  text: string;
  /** Raw HTML as parsed. NOT safe to show: run `sanitizeHtml` first. */
  html: string | null;
  attachments: MailAttachment[];
  /** Lower-case field name → every value of that field, for `HEADERS_OF_INTEREST`. */
  headers: Partial<Record<HeaderOfInterest, string[]>>;
  /** Number of Received fields: a hop count for loop detection (RFC 5321 §6.3). */
  receivedCount: number;
  /** Top-level multipart/report; report-type=delivery-status (RFC 3464 / RFC 6522). */
  isDeliveryReport: boolean;
  deliveryStatus: DeliveryStatus | null;
  /** Every irregularity noticed while parsing, human readable. Empty for clean mail. */
  warnings: string[];
  sizeBytes: number;
  /** Hex SHA-256 of the raw bytes exactly as received (what `raw_message.sha256` records). */
  rawSha256: string;
  /**
   * The content-dedupe key, hex SHA-256. For mail with a Message-ID: of what its author
   * wrote — the fields in `AUTHORED_FIELDS` and the body bytes — so the copies of one mail
   * delivered to several of our addresses, which differ only in what servers added on the
   * way (Received, Delivered-To, Return-Path, Authentication-Results, spam scores…), are
   * one message. For mail without a Message-ID: `rawSha256`, so only an exact
   * re-delivery (a UIDVALIDITY resync, an SMTP retry) is a duplicate.
   */
  contentHash: string;
}

/**
 * The header fields the author's client writes, which no server on the way changes:
 * with the body, what makes two deliveries the same mail (`ParsedMail.contentHash`).
 */
export const AUTHORED_FIELDS: ReadonlySet<string> = new Set([
  "from",
  "sender",
  "to",
  "cc",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "in-reply-to",
  "references",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
]);

/** Why a message could not become a `ParsedMail`; ingest records it as rejected. */
export const PARSE_REJECT_REASONS = [
  "oversize",
  "timeout",
  "unparseable",
  "too_many_parts",
  "header_too_large",
  // Not the parser's: the IMAP server failed to deliver the message, again and again
  // (connectors/fetch-trouble.ts). Nothing of it was received.
  "fetch_failed",
] as const;
export type ParseRejectReason = (typeof PARSE_REJECT_REASONS)[number];

/** Who sent a mail that could not be parsed, and what it was about, as far as its header says. */
export interface MailHeadline {
  messageId: string | null;
  /** The From mailbox. */
  from: string | null;
  subject: string | null;
}

export type ParseOutcome =
  | {
      ok: true;
      mail: ParsedMail;
      /** `sanitizeHtml(mail.html)` done off the main thread; null without HTML or when disabled. */
      sanitized: SanitizedHtml | null;
    }
  | {
      ok: false;
      reason: ParseRejectReason;
      detail: string;
      sizeBytes: number;
      /** Read from the header block, for the rejected record (the parser's `parse` adds it). */
      headline?: MailHeadline;
      /**
       * The content key as `ParsedMail.contentHash` gives it for mail without a Message-ID
       * (SHA-256 of the bytes after `ParseOptions.traceBytes`), so the same mail delivered
       * again is one rejected record: the key of mail without a Message-ID, and of a record
       * that had to be written without its header fields. Added by the parser's `parse`;
       * for oversize mail (`oversizeOutcome`) the size and the first 64 KB only (hashing
       * what the cap refuses would be the very cost it prevents).
       */
      contentHash?: string;
      /** Hex SHA-256 of the raw bytes as received (`raw_message.sha256`), added with `contentHash`. */
      rawSha256?: string;
    };

/**
 * The port the ingest service parses through (implemented by
 * `src/connectors/mime/parse.ts`). Never throws for bad mail: every message ends as a
 * `ParsedMail` or a rejection; a rejected promise means the parser itself is broken
 * or closed.
 */
export interface ParseOptions {
  /**
   * Time limit for this message instead of the parser's default, e.g. a longer one when
   * retrying a message that timed out while the machine was busy.
   */
  timeoutMs?: number;
  /**
   * The first this many bytes are trace lines the receiving server put in front of the
   * mail (the SMTP listener's Return-Path and Received): they differ on every delivery
   * attempt, so the content key of mail without a Message-ID leaves them out.
   */
  traceBytes?: number;
}

export interface MimeParser {
  parse(raw: Buffer, options?: ParseOptions): Promise<ParseOutcome>;
  close(): Promise<void>;
}

// RFC 5322 §3.6.4 msg-id: "<" id-left "@" id-right ">". Real mail also carries ids
// without "@" or brackets, so the extractor is lenient. Whitespace inside the brackets is
// dropped: it is folding (clients that fold long ids) or the obsolete syntax's CFWS around
// the "@" (RFC 5322 §4.5.4); taking the pieces between spaces as tokens made `<x y @ z>`
// the id "@", which every such id shares.
const BRACKETED_ID_RE = /<([^<>]+)>/g;
// Whitespace and control characters (a NUL cannot be stored) are never part of an id.
const NOT_IN_ID_RE = /[\s\u0000-\u001f\u007f]+/g;
// A bare token is taken for an id only with something on both sides of its "@".
const BARE_ID_RE = /^[^@]+@[^@]+$/;

/**
 * Canonical form of a Message-ID for storage and lookup: no angle brackets, no
 * surrounding whitespace or CFWS. Case is kept: RFC 5322 gives no case-insensitivity
 * for msg-id, and some MTAs issue ids differing only in case.
 */
export function normalizeMessageId(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const ids = extractMessageIds(raw);
  return ids[0] ?? null;
}

/**
 * Every msg-id in a header value (In-Reply-To, References), in order, de-duplicated.
 * Comments and phrases between ids (`<a@b> (Fred's message)`) are skipped; a value with
 * no bracketed id at all falls back to whitespace-separated tokens containing "@".
 */
export function extractMessageIds(value: string): string[] {
  // A Set, not includes(): a crafted References field can hold tens of thousands of ids.
  const seen = new Set<string>();
  const push = (id: string): void => {
    const clean = id.replace(NOT_IN_ID_RE, "");
    // "@", "<...>": nothing that tells one mail from another.
    if (!/[\p{L}\p{N}]/u.test(clean)) return;
    // 998 bytes, not characters: the id is indexed, and a btree entry holds ~2,700 bytes.
    if (clean && Buffer.byteLength(clean) <= 998) seen.add(clean);
  };
  for (const m of value.matchAll(BRACKETED_ID_RE)) push(m[1] ?? "");
  if (seen.size === 0) {
    for (const token of value.split(/[\s,]+/)) {
      const t = token.replace(/^<|>$/g, "");
      if (BARE_ID_RE.test(t) && !/[<>()"]/.test(t)) push(t);
    }
  }
  return [...seen];
}

import { bareAddress, extractMessageIds, isValidAddress, sameAddress } from "./address.js";

/**
 * Delivery status notifications (RFC 3464) and their best-effort look-alikes. Given the
 * fields of a report, decide which of our messages it is about, what happened to each
 * recipient and whether a contact's address is undeliverable (SPEC §10: bounces mark the
 * message and raise an event). Pure; ingest hands over the parsed parts.
 */

export interface DsnRecipientFields {
  finalRecipient?: string | null;
  originalRecipient?: string | null;
  action?: string | null;
  status?: string | null;
  diagnosticCode?: string | null;
}

export interface DsnReportFields {
  recipients: readonly DsnRecipientFields[];
  /** Message-ID of the original, when the reporter gave one explicitly. */
  originalMessageId?: string | null;
  /** Header block of the returned message (message/rfc822 or text/rfc822-headers part). */
  originalHeaders?: string | null;
}

export const DSN_ACTIONS = ["failed", "delayed", "delivered", "relayed", "expanded"] as const;
export type DsnAction = (typeof DSN_ACTIONS)[number];

export interface DsnRecipientOutcome {
  address: string;
  action: DsnAction;
  /** Enhanced status code `class.subject.detail` (RFC 3463), when known. */
  status: string | null;
  /** A 5.x.x failure: retrying will not help (RFC 3463 §3.1). */
  permanent: boolean;
  diagnostic: string | null;
}

export interface DsnOutcome {
  source: "RFC3464" | "HEURISTIC";
  originalMessageId: string | null;
  recipients: DsnRecipientOutcome[];
  /** Addresses that failed permanently: mark them undeliverable. */
  undeliverable: string[];
}

// ---------------------------------------------------------------------------
// Parsing the message/delivery-status body

/**
 * Splits a message/delivery-status body (RFC 3464 §2.1) into its per-message field group
 * and per-recipient groups. Fields are header-like (folded lines continue with
 * whitespace); groups are separated by blank lines. Field names are lower-cased.
 */
export function parseDeliveryStatus(text: string): {
  perMessage: Record<string, string>;
  perRecipient: Record<string, string>[];
} {
  const groups: Record<string, string>[] = [];
  let current: Record<string, string> | null = null;
  let lastKey: string | null = null;
  for (const line of text.replace(/\r\n?/g, "\n").split("\n")) {
    if (line.trim() === "") {
      current = null;
      lastKey = null;
      continue;
    }
    if (/^[ \t]/.test(line) && current && lastKey) {
      current[lastKey] = `${current[lastKey]} ${line.trim()}`;
      continue;
    }
    const m = /^([A-Za-z][A-Za-z0-9-]*)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    if (!current) {
      current = {};
      groups.push(current);
    }
    lastKey = (m[1] as string).toLowerCase();
    current[lastKey] = (m[2] as string).trim();
  }
  // The per-message group has no recipient fields; some reporters omit it altogether.
  const isRecipient = (g: Record<string, string>) => "final-recipient" in g || "original-recipient" in g;
  const perMessage = groups[0] && !isRecipient(groups[0]) ? groups[0] : {};
  return { perMessage, perRecipient: groups.filter(isRecipient) };
}

/** Turns a parsed delivery-status body and the returned headers into report fields. */
export function reportFieldsFromDeliveryStatus(
  text: string,
  originalHeaders?: string | null,
): DsnReportFields {
  const { perRecipient } = parseDeliveryStatus(text);
  return {
    recipients: perRecipient.map((g) => ({
      finalRecipient: g["final-recipient"] ?? null,
      originalRecipient: g["original-recipient"] ?? null,
      action: g["action"] ?? null,
      status: g["status"] ?? null,
      diagnosticCode: g["diagnostic-code"] ?? null,
    })),
    originalHeaders: originalHeaders ?? null,
  };
}

/**
 * Picks the delivery-status block out of a text that also holds the human-readable
 * notice (some parsers merge message/delivery-status into the text body): from the
 * first `Reporting-MTA:`/`Final-Recipient:`/`Original-Recipient:` line onwards.
 */
export function findDeliveryStatusBlock(text: string): string | null {
  const m = /^(?:Reporting-MTA|Original-Envelope-Id|Final-Recipient|Original-Recipient)\s*:/im.exec(text);
  return m ? text.slice(m.index) : null;
}

// ---------------------------------------------------------------------------
// Interpretation

// RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5. Never part of a longer
// dotted number: in "host mx.example [1.2.3.4]" the "2.3.4" of the IP address is no status
// (until 2026-11-23 an Exim bounce naming its host read as 2.3.4 "delivered", or with
// [10.4.2.15] as 4.2.15 "delayed", and marked nothing).
const ENHANCED = String.raw`(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)`;
const ENHANCED_RE = new RegExp(ENHANCED);
// An SMTP reply code (RFC 5321 §4.2) with the enhanced code it carries: "550 5.1.1",
// "550-5.1.1". The surest reading in free text, so it is taken first.
const REPLY_AND_ENHANCED_RE = new RegExp(String.raw`(?<![\w.])[245]\d\d[ -]${ENHANCED}`);
const REPLY_CODE_RE = /(?<![\w.])([245])\d\d(?!\w|\.\d)/;

/** Address from an RFC 3464 §2.3.2 field: `rfc822; addr`, possibly in angle brackets. */
function recipientAddress(value: string | null | undefined): string | null {
  if (!value) return null;
  const semi = value.indexOf(";");
  const type = semi >= 0 ? value.slice(0, semi).trim().toLowerCase() : "rfc822";
  if (type !== "rfc822") return null;
  const addr = bareAddress(semi >= 0 ? value.slice(semi + 1) : value);
  return isValidAddress(addr) ? addr : null;
}

function statusFrom(status: string | null | undefined, diagnostic: string | null | undefined): string | null {
  const s = status ? ENHANCED_RE.exec(status) : null;
  if (s) return `${s[1]}.${s[2]}.${s[3]}`;
  const d = diagnostic ? (REPLY_AND_ENHANCED_RE.exec(diagnostic) ?? ENHANCED_RE.exec(diagnostic)) : null;
  if (d) return `${d[1]}.${d[2]}.${d[3]}`;
  // A bare SMTP reply code gives the class only (RFC 3463 §3.1 "x.0.0").
  const r = diagnostic ? REPLY_CODE_RE.exec(diagnostic) : null;
  return r ? `${r[1]}.0.0` : null;
}

function normalizeAction(action: string | null | undefined, status: string | null): DsnAction {
  const a =
    action
      ?.trim()
      .toLowerCase()
      .split(/[\s(;]/)[0] ?? "";
  if ((DSN_ACTIONS as readonly string[]).includes(a)) return a as DsnAction;
  // No or unknown Action: infer from the status class.
  if (status?.startsWith("5")) return "failed";
  if (status?.startsWith("4")) return "delayed";
  if (status?.startsWith("2")) return "delivered";
  return "failed";
}

/** The Message-ID in a header block (unfolded), or null. */
export function messageIdFromHeaders(headers: string | null | undefined): string | null {
  if (!headers) return null;
  const unfolded = headers.replace(/\r?\n[ \t]+/g, " ");
  const m = /^Message-ID\s*:\s*(.*)$/im.exec(unfolded);
  return m ? (extractMessageIds(m[1] ?? "")[0] ?? null) : null;
}

function finish(
  source: DsnOutcome["source"],
  originalMessageId: string | null,
  recipients: DsnRecipientOutcome[],
) {
  const undeliverable: string[] = [];
  for (const r of recipients) {
    if (r.permanent && !undeliverable.some((u) => sameAddress(u, r.address))) undeliverable.push(r.address);
  }
  return { source, originalMessageId, recipients, undeliverable };
}

/**
 * Interprets RFC 3464 report fields. A recipient is a permanent failure when its action
 * is `failed` and its status class is 5 (RFC 3463 §3.1); `failed` with a 4.x.x status
 * (some MTAs give up on a transient condition) is reported but not permanent.
 */
export function interpretDsn(report: DsnReportFields): DsnOutcome {
  const recipients: DsnRecipientOutcome[] = [];
  for (const r of report.recipients) {
    const address = recipientAddress(r.finalRecipient) ?? recipientAddress(r.originalRecipient);
    if (!address) continue;
    const status = statusFrom(r.status, r.diagnosticCode);
    const action = normalizeAction(r.action, status);
    recipients.push({
      address,
      action,
      status,
      permanent: action === "failed" && (status === null || status.startsWith("5")),
      diagnostic: r.diagnosticCode?.replace(/\s+/g, " ").trim() || null,
    });
  }
  const originalMessageId =
    extractMessageIds(report.originalMessageId ?? null)[0] ?? messageIdFromHeaders(report.originalHeaders);
  return finish("RFC3464", originalMessageId, recipients);
}

/** Whether a report says this contact's address is undeliverable. */
export function isUndeliverable(outcome: DsnOutcome, address: string): boolean {
  return outcome.undeliverable.some((u) => sameAddress(u, address));
}

// ---------------------------------------------------------------------------
// Heuristic fallback for non-RFC 3464 bounces

export interface PlainBounceInput {
  subject: string | null;
  from: string | null;
  text: string;
  /** Headers of the returned message when it was attached (message/rfc822). */
  originalHeaders?: string | null;
  /**
   * The caller already knows the mail is a delivery notice (ingest's classification: a
   * null reverse path from a mail daemon, say): read it whatever its From and subject.
   */
  notice?: boolean;
}

const BOUNCE_SUBJECT_RE =
  /undeliver|returned mail|delivery (?:status notification|failure|has failed|failed|delayed)|delayed mail|^\s*warning: message \S+ delayed|failure notice|mail delivery (?:failed|failure|system)|could not be delivered|not yet been delivered|non-?delivery|nicht zustellbar|unzustellbar/i;
const BOUNCE_SENDER_RE = /^(?:mailer-daemon|postmaster|mail-daemon)@/i;
// Where the quoted original starts: after it, addresses are the original's, not failures.
const ORIGINAL_START_RE =
  /^(?:-{2,}.*(?:original message|returned message|undelivered message|message headers).*|[-\s]*This is a copy of the message.*|Original message:?|Received:\s.*|Return-Path:\s.*)$/im;
const ADDRESS_IN_TEXT_RE = /<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>?/g;

/**
 * Best effort for bounces that are not RFC 3464 reports (qmail, old Exchange, plain-text
 * "Undelivered Mail Returned to Sender" notices):
 * 1. it must look like a bounce: a MAILER-DAEMON/postmaster sender or a bounce subject
 *    (or delay notice: "Warning: message … delayed 24 hours"), unless the caller says it
 *    is a notice (`notice`);
 * 2. the notice is the text before the quoted original (a `--- Original message ---`
 *    style separator or the first `Received:`/`Return-Path:` line);
 * 3. each paragraph of the notice that names an address and an SMTP code is a recipient:
 *    status from an enhanced code (5.1.1) or the reply class (550 → 5.0.0);
 * 4. the original Message-ID comes from the attached headers, else from a
 *    `Message-ID:` line in the quoted part.
 * Returns null when nothing convincing is found; the caller then treats the mail as an
 * ordinary inbound message (the safe failure: nothing gets marked undeliverable).
 */
export function heuristicBounce(input: PlainBounceInput): DsnOutcome | null {
  const from = input.from ? bareAddress(input.from) : "";
  const looksLikeBounce =
    input.notice === true || BOUNCE_SENDER_RE.test(from) || BOUNCE_SUBJECT_RE.test(input.subject ?? "");
  if (!looksLikeBounce) return null;

  const text = input.text.replace(/\r\n?/g, "\n");
  const start = ORIGINAL_START_RE.exec(text);
  const notice = start ? text.slice(0, start.index) : text;
  const quoted = start ? text.slice(start.index) : "";

  const recipients: DsnRecipientOutcome[] = [];
  for (const para of notice.split(/\n\s*\n/)) {
    const flat = para.replace(/\s+/g, " ").trim();
    const status = statusFrom(null, flat);
    if (!status) continue;
    for (const m of flat.matchAll(ADDRESS_IN_TEXT_RE)) {
      const address = m[1] as string;
      if (!isValidAddress(address) || sameAddress(address, from) || BOUNCE_SENDER_RE.test(address)) continue;
      if (recipients.some((r) => sameAddress(r.address, address))) continue;
      const permanent = status.startsWith("5");
      recipients.push({
        address,
        action: permanent ? "failed" : status.startsWith("4") ? "delayed" : "delivered",
        status,
        permanent,
        diagnostic: flat.slice(0, 500),
      });
    }
  }
  const originalMessageId = messageIdFromHeaders(input.originalHeaders) ?? messageIdFromHeaders(quoted);
  if (recipients.length === 0 && !originalMessageId) return null;
  return finish("HEURISTIC", originalMessageId, recipients);
}

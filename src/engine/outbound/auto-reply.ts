import type { ConversationStatus } from "../domain.js";
import { stripComments } from "../text.js";
import { bareAddress, domainOf, extractMessageIds, sameAddress } from "./address.js";
import { AutoReplyError } from "./errors.js";
import { escapeHtml, isValidTimeZone, localDateTime } from "./text.js";

/**
 * Auto-replies (SPEC §9): when a queue answers automatically, whether a given inbound
 * mail must never be answered (loop protection), the template tags, and the limits on
 * what an auto-reply may carry. Pure; the caller counts recent auto-replies and sends.
 */

// ---------------------------------------------------------------------------
// (a) Triggers

export const AUTO_REPLY_TRIGGERS = [
  "NEW_CONVERSATION",
  "REPLY_TO_CLOSED",
  "REPLY_TO_PAUSED",
  "REPLY_TO_IDLE_ACTIVE",
] as const;
export type AutoReplyTriggerKind = (typeof AUTO_REPLY_TRIGGERS)[number];

export type AutoReplyTrigger =
  | { kind: "NEW_CONVERSATION" }
  | { kind: "REPLY_TO_CLOSED" }
  | { kind: "REPLY_TO_PAUSED" }
  | { kind: "REPLY_TO_IDLE_ACTIVE"; lastActivityAt: Date; receivedAt: Date };

export interface QueueAutoReplySettings {
  /** Master switch of the queue's auto-reply. */
  enabled: boolean;
  onNewConversation: boolean;
  onReplyToClosed: boolean;
  onReplyToPaused: boolean;
  onReplyToIdleActive: boolean;
  /** Days without activity before a reply to an ACTIVE conversation is answered (default 15). */
  idleDays?: number;
}

export const DEFAULT_IDLE_DAYS = 15;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Which trigger, if any, an inbound mail is. `previousStatus` is the conversation's
 * status before this mail arrived (a CLOSED one is being reopened by it). REOPENED counts
 * as ACTIVE: both are open conversations an agent is (or should be) working on.
 */
export function autoReplyTriggerFor(args: {
  isNewConversation: boolean;
  previousStatus: ConversationStatus | null;
  lastActivityAt: Date | null;
  receivedAt: Date;
}): AutoReplyTrigger | null {
  if (args.isNewConversation) return { kind: "NEW_CONVERSATION" };
  switch (args.previousStatus) {
    case "CLOSED":
      return { kind: "REPLY_TO_CLOSED" };
    case "PAUSED":
      return { kind: "REPLY_TO_PAUSED" };
    case "ACTIVE":
    case "REOPENED":
      return args.lastActivityAt
        ? { kind: "REPLY_TO_IDLE_ACTIVE", lastActivityAt: args.lastActivityAt, receivedAt: args.receivedAt }
        : null;
    default:
      return null;
  }
}

/** Whether the queue's settings ask for an auto-reply on this trigger. */
export function shouldAutoReply(trigger: AutoReplyTrigger | null, settings: QueueAutoReplySettings): boolean {
  if (!trigger || !settings.enabled) return false;
  switch (trigger.kind) {
    case "NEW_CONVERSATION":
      return settings.onNewConversation;
    case "REPLY_TO_CLOSED":
      return settings.onReplyToClosed;
    case "REPLY_TO_PAUSED":
      return settings.onReplyToPaused;
    case "REPLY_TO_IDLE_ACTIVE": {
      if (!settings.onReplyToIdleActive) return false;
      const days = settings.idleDays ?? DEFAULT_IDLE_DAYS;
      // Received time, not processing time: a backlog must not change the decision (SPEC §3).
      return trigger.receivedAt.getTime() - trigger.lastActivityAt.getTime() >= days * DAY_MS;
    }
  }
}

// ---------------------------------------------------------------------------
// (b) Loop protection

export const SUPPRESSION_REASONS = [
  "NO_SENDER",
  "NULL_RETURN_PATH",
  "AUTO_SUBMITTED",
  "AUTO_RESPONSE_SUPPRESSED",
  "PRECEDENCE",
  "MAILING_LIST",
  "BOUNCE",
  "SYSTEM_SENDER",
  "OWN_ADDRESS",
  "OWN_MESSAGE",
  "SPAM",
  "RATE_LIMITED",
] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/** Header values as received, keyed by lower-case name; repeated headers as arrays. */
export type RawHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface InboundForAutoReply {
  /** The From address (bare or `Name <addr>`); null when the mail had none. */
  from: string | null;
  /**
   * The envelope sender (MAIL FROM / Return-Path). `""` or `"<>"` is the null
   * reverse-path of a bounce; `undefined` means unknown (e.g. no Return-Path over IMAP).
   */
  returnPath?: string | null;
  headers: RawHeaders;
  /** Ingest's own bounce/DSN classification, when it has one. */
  isBounce?: boolean;
  isSpam?: boolean;
}

export interface AutoReplyContext {
  /** Every address this tenant sends from or receives on. */
  ownAddresses: readonly string[];
  /** The right-hand side of our Message-IDs. */
  messageIdDomain: string;
  /** Auto-replies already sent to this sender inside the window (the caller counts). */
  recentAutoRepliesToSender: number;
  /** At most this many per window (default 5 per 2 hours, see DEFAULT_AUTO_REPLY_RATE). */
  maxPerWindow?: number;
}

export const DEFAULT_AUTO_REPLY_RATE = { maxPerWindow: 5, windowMs: 2 * 60 * 60 * 1000 } as const;

// RFC 2369 and RFC 2919 list header fields: their presence means the mail came through
// a list, and RFC 3834 §2 says a responder should not answer list traffic. Marketing
// mail carries List-Unsubscribe (RFC 8058) without List-Id; it is bulk mail, so it counts.
const LIST_HEADERS = [
  "list-id",
  "list-unsubscribe",
  "list-post",
  "list-help",
  "list-subscribe",
  "list-owner",
  "list-archive",
];

// Local parts of system senders. MAILER-DAEMON and postmaster send bounces (RFC 5321
// §4.5.1); owner-* and *-request are list robots (RFC 3834 §2); no-reply addresses
// discard answers, so an auto-reply only produces a bounce back to us.
const SYSTEM_LOCAL_RE =
  /^(?:mailer-daemon|postmaster|listserv|majordomo|owner-.+|.+-request|no-?reply|do-?not-?reply|noreply-.+|bounces?(?:[+-].*)?)$/i;

/** Header names are case-insensitive (RFC 5322 §1.2.2); callers may pass any casing. */
function lowerCaseHeaders(headers: RawHeaders): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const key = name.toLowerCase();
    out.set(
      key,
      [...(out.get(key) ?? []), ...(typeof v === "string" ? [v] : v)].map((x) => x.trim()),
    );
  }
  return out;
}

/** The first token of a header value, lower-case, without RFC 5322 comments or parameters. */
function keyword(value: string): string {
  return (
    stripComments(value)
      .split(/[;\s]/)
      .filter((s) => s !== "")[0]
      ?.toLowerCase() ?? ""
  );
}

/**
 * Why an inbound mail must not get an auto-reply, or null when it may. Checks run from
 * the most certain to the most circumstantial, and the first match is returned so the
 * timeline can say why.
 */
export function autoReplySuppression(
  mail: InboundForAutoReply,
  ctx: AutoReplyContext,
): SuppressionReason | null {
  const headers = lowerCaseHeaders(mail.headers);
  const h = (name: string): string[] => headers.get(name) ?? [];
  const fromAddress = mail.from ? bareAddress(mail.from) : "";
  if (fromAddress === "" || !fromAddress.includes("@")) return "NO_SENDER";

  // RFC 5321 §4.5.5 / RFC 3834 §2: a null reverse-path marks a notification; answering
  // it is how bounce loops start.
  if (mail.returnPath !== undefined && mail.returnPath !== null) {
    const rp = mail.returnPath.trim();
    if (rp === "" || rp === "<>") return "NULL_RETURN_PATH";
  }
  for (const v of h("return-path")) {
    if (/^<\s*>$/.test(v) || v === "") return "NULL_RETURN_PATH";
  }

  // RFC 3834 §5: any Auto-Submitted value other than "no" is automatic mail.
  for (const v of h("auto-submitted")) {
    const k = keyword(v);
    if (k !== "" && k !== "no") return "AUTO_SUBMITTED";
  }
  // Pre-RFC 3834 vacation programs and some ticket systems mark their replies this way.
  if (h("x-autoreply").length > 0 || h("x-autorespond").length > 0) return "AUTO_SUBMITTED";
  if (h("x-auto-response-suppress").some((v) => /\b(?:all|autoreply|oof)\b/i.test(v))) {
    return "AUTO_RESPONSE_SUPPRESSED";
  }
  // RFC 3834 §2 names Precedence bulk, list and junk; auto_reply is what vacation sends.
  if (h("precedence").some((v) => ["bulk", "list", "junk", "auto_reply"].includes(keyword(v)))) {
    return "PRECEDENCE";
  }
  if (LIST_HEADERS.some((name) => h(name).length > 0)) return "MAILING_LIST";

  if (mail.isBounce) return "BOUNCE";
  // RFC 6522 multipart/report carries DSNs (RFC 3464) and MDNs (RFC 8098): never answer.
  if (h("content-type").some((v) => /^\s*multipart\/report\b/i.test(v))) return "BOUNCE";

  const local = fromAddress.slice(0, fromAddress.lastIndexOf("@"));
  if (SYSTEM_LOCAL_RE.test(local)) return "SYSTEM_SENDER";

  const ourDomain = ctx.messageIdDomain.toLowerCase();
  if (
    ctx.ownAddresses.some((a) => sameAddress(bareAddress(a), fromAddress)) ||
    domainOf(fromAddress) === ourDomain
  ) {
    return "OWN_ADDRESS";
  }
  // Our own mail coming back (a forwarding loop, a misconfigured alias): its Message-ID
  // was minted by us.
  const ids = extractMessageIds(h("message-id"));
  if (ids.some((id) => id.slice(id.lastIndexOf("@") + 1, -1).toLowerCase() === ourDomain))
    return "OWN_MESSAGE";

  if (mail.isSpam) return "SPAM";

  const max = ctx.maxPerWindow ?? DEFAULT_AUTO_REPLY_RATE.maxPerWindow;
  if (ctx.recentAutoRepliesToSender >= max) return "RATE_LIMITED";
  return null;
}

/**
 * Turns raw header lines (`{ key, line }` as most MIME parsers expose them) into
 * `RawHeaders`: names lower-cased, `Name:` prefix removed, folding undone (RFC 5322 §2.2.3).
 */
export function rawHeadersFromLines(
  lines: readonly { key: string; line: string }[],
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const { key, line } of lines) {
    const name = key.toLowerCase();
    const colon = line.indexOf(":");
    const value = (colon >= 0 ? line.slice(colon + 1) : line).replace(/\r?\n[ \t]+/g, " ").trim();
    const list = out[name] ?? [];
    list.push(value);
    out[name] = list;
  }
  return out;
}

// ---------------------------------------------------------------------------
// (c) Template tags

export interface AutoReplyTagValues {
  /** The customer's name, or address when no name is known. */
  consumer: string;
  /** Assigned or preferred agent's public name; empty when none. */
  agent: string | null;
  queue: string;
  company: string;
  ticketId: number | string;
  /** Next working day from the business-hours calendar: `YYYY-MM-DD`, or a Date. */
  nextWorkingDate: string | Date | null;
  /** The moment `@{date}`/`@{time}` describe (normally when the mail was received). */
  now: Date;
  /** The tenant's IANA time zone. */
  timeZone: string;
}

const AUTO_REPLY_TAG_RE = /@\{\s*([A-Za-z_]+)\s*\}/g;

/**
 * Replaces `@{consumer}`, `@{agent}`, `@{date}`, `@{time}`, `@{queue}`, `@{company}`,
 * `@{next_working_date}` and `@{ticket_id}` (names case-insensitive). Dates are
 * `YYYY-MM-DD` and times `HH:MM` (24-hour) in the tenant's zone — unambiguous in every
 * language the auto-reply text may be written in. Values are HTML-escaped for HTML
 * templates; unknown tags stay as written so a typo is visible, not silently blank.
 */
export function renderAutoReplyTags(
  template: string,
  values: AutoReplyTagValues,
  options: { html: boolean },
): string {
  if (!isValidTimeZone(values.timeZone)) {
    throw new AutoReplyError("INVALID_TIME_ZONE", "timeZone", `Unknown time zone ${values.timeZone}`);
  }
  const local = localDateTime(values.now, values.timeZone);
  const next =
    values.nextWorkingDate instanceof Date
      ? localDateTime(values.nextWorkingDate, values.timeZone).date
      : (values.nextWorkingDate ?? "");
  const table: Record<string, string> = {
    consumer: values.consumer,
    agent: values.agent ?? "",
    date: local.date,
    time: local.time,
    queue: values.queue,
    company: values.company,
    next_working_date: next,
    ticket_id: String(values.ticketId),
  };
  return template.replace(AUTO_REPLY_TAG_RE, (whole, name: string) => {
    const v = table[name.toLowerCase()];
    if (v === undefined) return whole;
    return options.html ? escapeHtml(v) : v;
  });
}

// ---------------------------------------------------------------------------
// (d) Attachment limits

export interface AutoReplyAttachment {
  filename: string;
  contentType: string;
  size: number;
  /** Inline image referenced from the HTML by Content-ID. */
  inline: boolean;
  /** First bytes of the content, to catch executables behind a harmless name. */
  head?: Uint8Array;
}

export interface AutoReplyAttachmentLimits {
  maxInlineImages: number;
  maxAttachments: number;
  maxTotalBytes: number;
}

export const DEFAULT_AUTO_REPLY_ATTACHMENT_LIMITS: AutoReplyAttachmentLimits = {
  maxInlineImages: 10,
  maxAttachments: 10,
  maxTotalBytes: 25 * 1024 * 1024,
};

/** Allowed types and the file extensions that go with them. SVG is left out: it can carry script. */
export const AUTO_REPLY_ALLOWED_TYPES: Readonly<Record<string, readonly string[]>> = {
  "image/png": ["png"],
  "image/jpeg": ["jpg", "jpeg"],
  "image/gif": ["gif"],
  "image/webp": ["webp"],
  "image/bmp": ["bmp"],
  "application/pdf": ["pdf"],
  "text/plain": ["txt"],
  "text/csv": ["csv"],
  "application/rtf": ["rtf"],
  "application/msword": ["doc"],
  "application/vnd.ms-excel": ["xls"],
  "application/vnd.ms-powerpoint": ["ppt"],
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ["docx"],
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ["xlsx"],
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": ["pptx"],
  "application/vnd.oasis.opendocument.text": ["odt"],
  "application/vnd.oasis.opendocument.spreadsheet": ["ods"],
  "application/vnd.oasis.opendocument.presentation": ["odp"],
};

function isExecutableContent(head: Uint8Array | undefined): boolean {
  if (!head || head.length < 2) return false;
  // PE/DOS ("MZ"), ELF, Mach-O and script shebangs ("#!").
  if (head[0] === 0x4d && head[1] === 0x5a) return true;
  if (head[0] === 0x23 && head[1] === 0x21) return true;
  if (head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46)
    return true;
  if (head.length >= 4) {
    const magic =
      ((head[0] as number) << 24) |
      ((head[1] as number) << 16) |
      ((head[2] as number) << 8) |
      (head[3] as number);
    if ([0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe].includes(magic >>> 0)) return true;
  }
  return false;
}

/**
 * Every problem with an auto-reply's attachments (the config API shows all at once).
 * A file passes when its declared type is allowed, its extension matches that type
 * (so `invoice.pdf.exe` declared as PDF fails) and its first bytes are not an executable.
 */
export function checkAutoReplyAttachments(
  attachments: readonly AutoReplyAttachment[],
  limits: Partial<AutoReplyAttachmentLimits> = {},
): AutoReplyError[] {
  const l = { ...DEFAULT_AUTO_REPLY_ATTACHMENT_LIMITS, ...limits };
  const errors: AutoReplyError[] = [];
  let inline = 0;
  let regular = 0;
  let total = 0;
  attachments.forEach((a, i) => {
    const field = `attachments[${i}]`;
    const type = a.contentType.trim().toLowerCase().split(";")[0]?.trim() ?? "";
    const ext = /\.([A-Za-z0-9]+)$/.exec(a.filename.trim())?.[1]?.toLowerCase() ?? "";
    const exts = AUTO_REPLY_ALLOWED_TYPES[type];
    if (!exts?.includes(ext) || isExecutableContent(a.head)) {
      errors.push(
        new AutoReplyError("ATTACHMENT_TYPE_NOT_ALLOWED", field, `${a.filename}: type not allowed`),
      );
    }
    if (a.inline) {
      inline++;
      if (!type.startsWith("image/")) {
        errors.push(
          new AutoReplyError("INLINE_NOT_IMAGE", field, `${a.filename}: only images can be inline`),
        );
      }
    } else {
      regular++;
    }
    total += a.size;
  });
  if (inline > l.maxInlineImages) {
    errors.push(
      new AutoReplyError(
        "TOO_MANY_INLINE_IMAGES",
        "attachments",
        `At most ${l.maxInlineImages} inline images`,
      ),
    );
  }
  if (regular > l.maxAttachments) {
    errors.push(
      new AutoReplyError("TOO_MANY_ATTACHMENTS", "attachments", `At most ${l.maxAttachments} attachments`),
    );
  }
  if (total > l.maxTotalBytes) {
    errors.push(
      new AutoReplyError("TOO_LARGE", "attachments", `Attachments exceed ${l.maxTotalBytes} bytes`),
    );
  }
  return errors;
}

/** Throws the first problem `checkAutoReplyAttachments` finds. */
export function assertAutoReplyAttachments(
  attachments: readonly AutoReplyAttachment[],
  limits: Partial<AutoReplyAttachmentLimits> = {},
): void {
  const [first] = checkAutoReplyAttachments(attachments, limits);
  if (first) throw first;
}

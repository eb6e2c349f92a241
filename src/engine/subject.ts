import type { TicketDelimiter, TicketPlacement } from "./domain.js";

/**
 * Subjects and ticket numbers (SPEC §6). Pure functions shared by ingest (extracting a
 * ticket number to thread on) and outbound (placing it, and one `Re:` only).
 */

export interface TicketFormat {
  placement: TicketPlacement;
  delimiter: TicketDelimiter;
}

/** The ticket token as it appears in a subject: `#123`, `[#123]` or `{#123}`. */
export function ticketToken(ticketNumber: number, delimiter: TicketDelimiter): string {
  switch (delimiter) {
    case "SQUARE":
      return `[#${ticketNumber}]`;
    case "CURLY":
      return `{#${ticketNumber}}`;
    default:
      return `#${ticketNumber}`;
  }
}

// Any of the three token shapes; `#` is required so plain numbers in a subject
// ("order 123456") never thread a mail into someone else's ticket, and a bare one is not
// followed by `-` and a digit either: "Invoice #2024-17" names no ticket 2024 (re-probe,
// session 16), while "#100001-urgent" still names 100001 (second re-probe).
const TOKEN_RE = /(?:\[#(\d{1,12})\]|\{#(\d{1,12})\}|(?<![\w#])#(\d{1,12})(?!\w|-\d))/g;

/** Every ticket number found in a subject, in order of appearance, de-duplicated. */
export function extractTicketNumbers(subject: string): number[] {
  const found: number[] = [];
  for (const m of subject.matchAll(TOKEN_RE)) {
    const n = Number(m[1] ?? m[2] ?? m[3]);
    if (Number.isSafeInteger(n) && !found.includes(n)) found.push(n);
  }
  return found;
}

// The delimited shapes only ours take: `[#123]`, `{#123}`.
const DELIMITED_TOKEN_RE = /\[#\d{1,12}\]|\{#\d{1,12}\}/g;

/**
 * Removes the ticket tokens we place — any `[#N]` or `{#N}`, and a bare `#N` only when N
 * is `ticketNumber` — and tidies the spaces left behind. A bare `#digits` is also how
 * customers write their own numbers ("Order #98765", "Invoice #2024-17"): those stay
 * (until 2026-11-23 every bare `#digits` was taken for a stale token and cut out of the
 * reply's subject, leaving "Invoice -17 wrong").
 */
export function stripTicketTokens(subject: string, ticketNumber: number): string {
  const clean = subject.replace(DELIMITED_TOKEN_RE, " ");
  // Read as TOKEN_RE reads a bare token: "#2024-17" is not the ticket 2024.
  const bare = Number.isSafeInteger(ticketNumber)
    ? clean.replace(new RegExp(`(?<![\\w#])#${ticketNumber}(?!\\w|-\\d)`, "g"), " ")
    : clean;
  return bare.replace(/\s{2,}/g, " ").trim();
}

// Reply/forward prefixes in the languages of the seeds and common clients:
// Re, Aw (de), Réf/Ref (fr), Sv (nordic), Antw (nl), Fwd/Fw/Wg (de)/Tr (fr).
const REPLY_PREFIX_RE = /^\s*(?:(?:re|aw|antw|sv|réf|ref)(?:\[\d+\])?\s*:\s*)+/i;
const FORWARD_PREFIX_RE = /^\s*(?:(?:fwd?|wg|tr)(?:\[\d+\])?\s*:\s*)+/i;

/** Strips any number of leading reply prefixes (`Re: AW: re[2]:`). */
export function stripReplyPrefixes(subject: string): string {
  return subject.replace(REPLY_PREFIX_RE, "").trim();
}

/** The subject of a reply: exactly one `Re: `, never `Re: Re:`. */
export function replySubject(subject: string): string {
  const base = stripReplyPrefixes(subject);
  return base ? `Re: ${base}` : "Re:";
}

/** The subject of a forward: exactly one `Fwd: ` and no reply prefix before it. */
export function forwardSubject(subject: string): string {
  const base = stripReplyPrefixes(subject).replace(FORWARD_PREFIX_RE, "").trim();
  return base ? `Fwd: ${base}` : "Fwd:";
}

/**
 * Places the ticket token in a subject per the address's format, replacing any token
 * already there (ours, or a stale `[#N]`/`{#N}`) so a long thread never accumulates them;
 * the customer's own `#numbers` are kept (`stripTicketTokens`).
 * A `Re:`/`Fwd:` prefix stays in front when the token goes to the start.
 */
export function withTicketNumber(subject: string, ticketNumber: number, format: TicketFormat): string {
  const clean = stripTicketTokens(subject, ticketNumber);
  if (format.placement === "HIDDEN") return clean;
  const token = ticketToken(ticketNumber, format.delimiter);
  if (format.placement === "START") {
    const prefix = /^\s*(?:(?:re|fwd?)\s*:\s*)/i.exec(clean);
    if (prefix) return `${prefix[0].trim()} ${token} ${clean.slice(prefix[0].length)}`.trim();
    return `${token} ${clean}`.trim();
  }
  return `${clean} ${token}`.trim();
}

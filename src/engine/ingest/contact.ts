import { domainToASCII, domainToUnicode } from "node:url";
import { clip } from "../text.js";
import type { MailAddress } from "./parsed-mail.js";

/**
 * Contacts are keyed by their normalised email address. Pure functions: the ingest
 * service looks the contact up (or creates it) with `normalizeEmailAddress(...).address`.
 */

export interface NormalizedAddress {
  /** Canonical key: lower-case local part, Unicode (NFC, lower-case) domain. */
  address: string;
  local: string;
  /** Unicode form of the domain, e.g. "bücher.example". */
  domain: string;
  /** Same address with an A-label (punycode) domain, for SMTP without SMTPUTF8. */
  asciiAddress: string;
}

// RFC 5321 §4.5.3.1: 64 octets local part, 255 domain, 254 for the whole path.
const MAX_LOCAL = 64;
const MAX_ADDRESS = 254;

/**
 * Normalises one address or returns null when it is not a usable mailbox.
 *
 * - trims, drops `<>` and a `mailto:` prefix;
 * - lower-cases the local part too: RFC 5321 lets it be case-sensitive, but no
 *   mainstream provider treats it so, and one customer writing as `John@` and `john@`
 *   must be one contact;
 * - IDN: the domain is compared in Unicode NFC lower-case (UTS #46 via the WHATWG URL
 *   rules), so `xn--bcher-kva.example` and `Bücher.example` are the same contact;
 *   a domain that has no valid A-label form is rejected.
 */
export function normalizeEmailAddress(raw: string | null | undefined): NormalizedAddress | null {
  if (!raw) return null;
  let s = raw.trim().normalize("NFC");
  if (s.toLowerCase().startsWith("mailto:")) s = s.slice(7);
  s = s.replace(/^<+|>+$/g, "").trim();
  // Control characters or whitespace anywhere would let a crafted header smuggle a
  // second address or a CRLF into anything that reuses the value.
  if (!s || /[\s\u0000-\u001f\u007f<>,;]/.test(s)) return null;
  const at = s.lastIndexOf("@");
  if (at <= 0 || at === s.length - 1) return null;
  let local = s.slice(0, at);
  const rawDomain = s.slice(at + 1).replace(/\.$/, "");
  // A quoted local part ("john doe"@x) is legal but never a real customer address
  // worth keeping quoted; strip the quotes only when the inside needs none.
  if (/^"[^"\\]+"$/.test(local) && /^[^\s"(),:;<>@[\\\]]+$/.test(local.slice(1, -1)))
    local = local.slice(1, -1);
  if (local.includes("@") && !local.startsWith('"')) return null;
  local = local.toLowerCase();
  if (local.length > MAX_LOCAL) return null;
  // Domain literals ([192.0.2.1]) are valid but cannot be IDN-mapped; keep them as is.
  let domain: string;
  let asciiDomain: string;
  if (/^\[[^\]]+\]$/.test(rawDomain)) {
    domain = rawDomain.toLowerCase();
    asciiDomain = domain;
  } else {
    asciiDomain = domainToASCII(rawDomain);
    if (!asciiDomain?.includes(".") || asciiDomain.length > 253) return null;
    domain = domainToUnicode(asciiDomain).normalize("NFC");
  }
  const address = `${local}@${domain}`;
  const asciiAddress = `${local}@${asciiDomain}`;
  if (asciiAddress.length > MAX_ADDRESS) return null;
  return { address, local, domain, asciiAddress };
}

/** True when both are the same mailbox after normalisation. */
export function sameAddress(a: string | null | undefined, b: string | null | undefined): boolean {
  const na = normalizeEmailAddress(a);
  const nb = normalizeEmailAddress(b);
  return na !== null && nb !== null && na.address === nb.address;
}

const MAX_NAME = 200;
const NAME_INPUT_CHARS = 1000;

/**
 * The display name to store for a contact, or null when the header gave nothing usable.
 * Rejected as names: empty strings, a copy of an address (`"john@x.com" <john@x.com>`),
 * anything containing an `@` address (a spoofing trick: `"support@bank.com" <evil@x>`),
 * and strings with no letter or digit. Quotes, control characters and runs of
 * whitespace are cleaned; the result is at most 200 characters. Only the first
 * `NAME_INPUT_CHARS` are looked at: the address test and the quote stripping take time
 * quadratic in the length (a From name of 100,000 characters held the event loop ~8 s),
 * and nothing past them could reach the stored name.
 */
export function decideDisplayName(name: string | null | undefined, address: string): string | null {
  if (!name) return null;
  let n = clip(name, NAME_INPUT_CHARS)
    .normalize("NFC")
    .replace(/[\u0000-\u001f\u007f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  // Strip one level of wrapping quotes that some clients double-encode.
  while (/^(["'`]).*\1$/.test(n) && n.length >= 2) n = n.slice(1, -1).trim();
  if (!n) return null;
  if (/[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+/.test(n)) return null;
  const norm = normalizeEmailAddress(address);
  if (norm && n.toLowerCase() === norm.local) {
    // "john" <john@x.com> adds nothing, but is still the person's chosen name; keep it.
    return n.slice(0, MAX_NAME);
  }
  if (!/[\p{L}\p{N}]/u.test(n)) return null;
  return n.length > MAX_NAME ? n.slice(0, MAX_NAME).trimEnd() : n;
}

export interface SenderContact {
  email: string;
  displayName: string | null;
}

/**
 * The contact a message comes from: its From mailbox. Reply-To is deliberately not used
 * for identity (anyone can set it; it is only where replies go), so a spoofed Reply-To
 * never attaches mail to someone else's contact record.
 */
export function senderContact(from: MailAddress | null): SenderContact | null {
  if (!from) return null;
  const norm = normalizeEmailAddress(from.address);
  if (!norm) return null;
  return { email: norm.address, displayName: decideDisplayName(from.name, norm.address) };
}

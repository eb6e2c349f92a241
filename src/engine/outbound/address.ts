import { clip, wellFormed } from "../text.js";
import { ComposeError } from "./errors.js";
import { hasControlChars, stripControls } from "./text.js";

/** A mailbox as the outbound code passes it around: an optional display name and an address. */
export interface MailAddress {
  name: string;
  address: string;
}

export interface MailAddressInput {
  name?: string | null;
  address: string;
}

// RFC 5322 §3.2.3 atext, plus any non-ASCII character that is not a control or space
// (RFC 6532 §3.2 UTF-8 addresses). Quoted local parts and address literals are refused:
// customers do not use them and they are a favourite vehicle for parser confusion.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\\x00-\\x7f\\s\\p{C}]";
const LOCAL_RE = new RegExp(`^(?:${ATEXT})+(?:\\.(?:${ATEXT})+)*$`, "u");
const LABEL_RE =
  /^(?:[A-Za-z0-9]|[^\x00-\x7f\s\p{C}])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f\s\p{C}]){0,61}(?:[A-Za-z0-9]|[^\x00-\x7f\s\p{C}]))?$/u;

/** Longest display name we put in a header; longer ones are cut, not refused. */
const MAX_NAME_LENGTH = 200;

/** Validates a domain name: at least two labels (catches `user@gmail`), each ≤ 63 chars. */
export function isValidDomain(domain: string): boolean {
  if (domain.length === 0 || domain.length > 253 || hasControlChars(domain)) return false;
  const labels = domain.split(".");
  if (labels.length < 2) return false;
  return labels.every((l) => LABEL_RE.test(l));
}

/**
 * Syntax check of an addr-spec (RFC 5322 §3.4.1) with the RFC 5321 §4.5.3.1 length
 * limits (local part ≤ 64 octets, path ≤ 256 so address ≤ 254).
 */
export function isValidAddress(address: string): boolean {
  if (address.length > 254 || hasControlChars(address) || /\s/.test(address)) return false;
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (Buffer.byteLength(local, "utf8") > 64) return false;
  return LOCAL_RE.test(local) && isValidDomain(domain);
}

/** Display name safe for a header: controls become spaces, length is capped. */
export function cleanDisplayName(name: string | null | undefined): string {
  if (!name) return "";
  return clip(wellFormed(stripControls(name)), MAX_NAME_LENGTH).trim();
}

/**
 * Validates and normalises one mailbox. An address is never "repaired": a CR/LF or a
 * space in it is an attack or a typo, and either way the agent must see it, so it is a
 * typed error naming the field. Display names are free text and are cleaned instead.
 */
export function toMailAddress(input: MailAddressInput, field: string): MailAddress {
  const raw = typeof input.address === "string" ? input.address : "";
  // Checked before trimming: trim() would quietly eat a trailing CR/LF.
  const address = hasControlChars(raw) ? "" : raw.trim();
  if (!isValidAddress(address)) {
    throw new ComposeError("INVALID_ADDRESS", field, `Invalid email address in ${field}`);
  }
  return { name: cleanDisplayName(input.name), address };
}

export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

/** Extracts the addr-spec from `Name <a@b>`, `<a@b>`, `rfc822; a@b` or a bare `a@b`. */
export function bareAddress(value: string): string {
  const angle = /<([^<>]*)>/.exec(value);
  const inner = angle ? (angle[1] ?? "") : value;
  return inner.trim();
}

// msg-id (RFC 5322 §3.6.4): "<" id-left "@" id-right ">"; id-left is dot-atom-text, id-right
// dot-atom-text or a no-fold-literal. Real mail bends dot-atom (double dots, trailing dots),
// so dots are accepted anywhere, but nothing outside printable ASCII ever is.
const MSG_ID_RE =
  /^<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+)@([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+|\[[\x21-\x5a\x5e-\x7e]*\])>$/;

/** Longest message id we repeat; beyond it, it is junk or an attack on header size. */
const MAX_MESSAGE_ID_LENGTH = 250;

/**
 * A message id in canonical `<left@right>` form, or null when it is not valid.
 * Accepts the value with or without the angle brackets.
 */
export function normalizeMessageId(value: string | null | undefined): string | null {
  if (typeof value !== "string") return null;
  const trimmed = value.trim();
  if (trimmed === "" || hasControlChars(trimmed)) return null;
  const candidate = trimmed.startsWith("<") ? trimmed : `<${trimmed}>`;
  if (candidate.length > MAX_MESSAGE_ID_LENGTH) return null;
  return MSG_ID_RE.test(candidate) ? candidate : null;
}

/**
 * Every valid message id in a References/In-Reply-To value as received, in order,
 * de-duplicated. Invalid tokens are dropped rather than failing the whole header:
 * one broken id from a customer's client must not break threading for the rest.
 */
export function extractMessageIds(value: string | readonly string[] | null | undefined): string[] {
  if (value == null) return [];
  const values = typeof value === "string" ? [value] : value;
  const out: string[] = [];
  for (const v of values) {
    if (typeof v !== "string") continue;
    const tokens = v.includes("<") ? (v.match(/<[^<>]*>/g) ?? []) : v.split(/[\s,]+/);
    for (const t of tokens) {
      const id = normalizeMessageId(t);
      if (id && !out.includes(id)) out.push(id);
    }
  }
  return out;
}

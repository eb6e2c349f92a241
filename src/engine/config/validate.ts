import type { Problems } from "../errors.js";

/** Inbox limit: a number 0–1,000, OFF (no automatic delivery), or null (inherit/default). */
export function validateInboxLimit(p: Problems, field: string, value: number | "OFF" | null): void {
  if (value === null || value === "OFF") return;
  p.check(
    Number.isInteger(value) && value >= 0 && value <= 1000,
    field,
    "must be a whole number from 0 to 1,000, or OFF",
  );
}

const EMAIL_RE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** A plain addr-spec (no display name, no CR/LF: these values end up in mail headers). */
export function isEmailAddress(value: string): boolean {
  return value.length <= 254 && EMAIL_RE.test(value);
}

export function checkEmail(
  p: Problems,
  field: string,
  value: string | null | undefined,
  required = true,
): void {
  if (value === null || value === undefined || value === "") {
    if (required) p.add(field, "is required");
    return;
  }
  p.check(isEmailAddress(value), field, "must be a valid email address");
}

export function checkName(p: Problems, field: string, value: string | undefined, max = 100): void {
  if (value === undefined) return;
  const v = value.trim();
  p.check(v.length >= 1 && v.length <= max, field, `must be 1–${max} characters`);
  // Names end up in headers and logs; control characters are never legitimate.
  p.check(!/[\u0000-\u001f\u007f]/.test(v), field, "must not contain control characters");
}

export function checkIntRange(
  p: Problems,
  field: string,
  value: number | null | undefined,
  min: number,
  max: number,
): void {
  if (value === null || value === undefined) return;
  p.check(
    Number.isInteger(value) && value >= min && value <= max,
    field,
    `must be a whole number from ${min} to ${max}`,
  );
}

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Any C0 control character or DEL: CR/LF would let a value inject mail or protocol headers. */
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** Free text that ends up in a mail header or an IMAP/SMTP command: bounded, no control characters. */
export function checkHeaderText(
  p: Problems,
  field: string,
  value: string | null | undefined,
  max: number,
): void {
  if (value === null || value === undefined) return;
  p.check(value.length <= max, field, `at most ${max} characters`);
  p.check(!CONTROL_RE.test(value), field, "must not contain line breaks or control characters");
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** A DNS name, IPv4 literal or bracket-free IPv6 literal. */
export function isHostname(value: string): boolean {
  return HOSTNAME_RE.test(value) || /^[0-9a-fA-F.]*:[0-9a-fA-F:.]*$/.test(value);
}

import type { Problems } from "../errors.js";
import { hasControlChars } from "../text.js";

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

export interface TextOptions {
  /** Bodies (text, HTML): line breaks and tabs are content, so only NUL is refused. Default false. */
  multiline?: boolean;
}

/**
 * Why `value` cannot be stored as text, or null. PostgreSQL refuses NUL in text (22021)
 * and in jsonb (22P05), and an unpaired surrogate in jsonb (22P02); a text column would
 * silently store it as U+FFFD. Single-line values (names, subjects, reasons, tags) end up
 * in mail headers and logs, where no control character is legitimate.
 */
export function textProblem(value: string, opts: TextOptions = {}): string | null {
  if (!value.isWellFormed()) return "must be valid Unicode (no unpaired surrogate code units)";
  if (opts.multiline) return value.includes("\u0000") ? "must not contain NUL characters" : null;
  return hasControlChars(value) ? "must not contain line breaks or control characters" : null;
}

/** Free text: at most `max` UTF-16 units, storable (see `textProblem`); null/undefined = not given. */
export function checkText(
  p: Problems,
  field: string,
  value: string | null | undefined,
  max: number,
  opts: TextOptions = {},
): void {
  if (value === null || value === undefined) return;
  p.check(value.length <= max, field, `at most ${max.toLocaleString("en-US")} characters`);
  const problem = textProblem(value, opts);
  if (problem !== null) p.add(field, problem);
}

export function checkName(p: Problems, field: string, value: string | undefined, max = 100): void {
  if (value === undefined) return;
  const v = value.trim();
  p.check(v.length >= 1 && v.length <= max, field, `must be 1–${max} characters`);
  // Names end up in headers and logs; control characters are never legitimate.
  const problem = textProblem(v);
  if (problem !== null) p.add(field, problem);
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

/** Free text that ends up in a mail header or an IMAP/SMTP command: bounded, no control characters. */
export function checkHeaderText(
  p: Problems,
  field: string,
  value: string | null | undefined,
  max: number,
): void {
  if (value === null || value === undefined) return;
  p.check(value.length <= max, field, `at most ${max} characters`);
  const problem = textProblem(value);
  if (problem !== null) p.add(field, problem);
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** A DNS name, IPv4 literal or bracket-free IPv6 literal. */
export function isHostname(value: string): boolean {
  return HOSTNAME_RE.test(value) || /^[0-9a-fA-F.]*:[0-9a-fA-F:.]*$/.test(value);
}

/**
 * Whether an update sets anything. drizzle's `set()` drops undefined values and throws
 * "No values to set" when none is left, so an empty update returns the row instead.
 */
export function hasChanges(values: object): boolean {
  return Object.values(values).some((v) => v !== undefined);
}

/**
 * Strings on their way into PostgreSQL. A JavaScript string may hold half of a UTF-16
 * surrogate pair (a cut through an emoji, a broken UTF-16 encoded word): a text column
 * stores it as U+FFFD, but jsonb refuses the JSON escape `"\ud83d"` outright, which used to
 * fail whole transactions (an ingested mail quarantined for an emoji at character 200 of
 * its subject).
 */

// ES2024 (Node 20 has both); the project's lib is ES2023.
declare global {
  interface String {
    isWellFormed(): boolean;
    toWellFormed(): string;
  }
}

/** `s` with every unpaired surrogate replaced by U+FFFD. */
export function wellFormed(s: string): string {
  return s.isWellFormed() ? s : s.toWellFormed();
}

/** The first `max` UTF-16 units of `s`, never ending in the first half of a pair. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const code = s.charCodeAt(max - 1);
  return s.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/** JSON text for a jsonb value: every string in it well-formed. */
export function jsonbText(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "string" ? wellFormed(v) : v));
}

// C0 controls (incl. CR, LF, NUL, TAB), DEL, C1 controls and the Unicode line/paragraph
// separators: any of them in a header value can split it into a second header
// (RFC 5322 §2.2 — a header field ends at CRLF), confuse a parser downstream, or break a
// one-line value (a name, a subject) for its readers.
const CONTROL_RUN_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** True when the string holds any character a one-line value must not hold. */
export function hasControlChars(value: string): boolean {
  return CONTROL_RE.test(value);
}

/** Replaces every run of control characters with one space and tidies the spaces. */
export function stripControls(value: string): string {
  return value.replace(CONTROL_RUN_RE, " ").replace(/ {2,}/g, " ").trim();
}

/**
 * Removes RFC 5322 comments (nested, with quoted-pairs), leaving quoted strings alone; a
 * comment left open runs to the end. One pass: the regex `/\([^)]*\)/g` this replaced for
 * References and the auto-reply checks took time quadratic in a run of "(" (200,000 of
 * them: 22 s).
 */
export function stripComments(value: string): string {
  let out = "";
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === "\\" && i + 1 < value.length) {
      if (depth === 0) out += ch + value[i + 1];
      i++;
      continue;
    }
    if (depth === 0 && ch === '"') quoted = !quoted;
    if (!quoted && ch === "(") {
      depth++;
      continue;
    }
    if (!quoted && ch === ")" && depth > 0) {
      depth--;
      if (depth === 0) out += " ";
      continue;
    }
    if (depth === 0) out += ch;
  }
  return out;
}

/**
 * Small string helpers shared by composition, auto-replies and DSN handling.
 * Everything here is pure and synchronous.
 */

// One definition of what a one-line value must not hold, for headers and validation alike.
export { hasControlChars, stripControls } from "../text.js";

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** Plain text to a minimal HTML fragment: escaped, paragraphs and line breaks kept. */
export function textToHtml(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .split(/\n{2,}/)
    .map((para) => `<p>${escapeHtml(para).replace(/\n/g, "<br>")}</p>`)
    .join("\n");
}

/** Prefixes every line with `> ` as mail clients quote (RFC 3676 §4.5 quote marks). */
export function quoteText(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/\n+$/, "")
    .split("\n")
    .map((line) => (line.startsWith(">") ? `>${line}` : `> ${line}`))
    .join("\n");
}

export interface LocalDateTime {
  /** `YYYY-MM-DD` in the given zone. */
  date: string;
  /** `HH:MM`, 24-hour, in the given zone. */
  time: string;
}

const formatterCache = new Map<string, Intl.DateTimeFormat>();

/** True when the runtime knows the IANA zone name. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    getFormatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

function getFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatterCache.get(timeZone);
  if (!f) {
    // Throws RangeError on an unknown zone; callers turn that into their typed error.
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    formatterCache.set(timeZone, f);
  }
  return f;
}

/**
 * A date as ISO-like local date and time in an IANA zone. Built from `formatToParts`
 * so the output does not depend on the runtime's locale data for a given language.
 */
export function localDateTime(at: Date, timeZone: string): LocalDateTime {
  // formatToParts costs tens of microseconds; the same minute in the same zone recurs
  // (quotes of one thread, auto-replies of one burst), so keep the last results.
  const key = `${timeZone}|${Math.floor(at.getTime() / 60_000)}`;
  const hit = localCache.get(key);
  if (hit) return hit;
  const parts: Record<string, string> = {};
  for (const p of getFormatter(timeZone).formatToParts(at)) parts[p.type] = p.value;
  const out = {
    date: `${parts["year"]}-${parts["month"]}-${parts["day"]}`,
    time: `${parts["hour"]}:${parts["minute"]}`,
  };
  if (localCache.size >= 1024) localCache.delete(localCache.keys().next().value as string);
  localCache.set(key, out);
  return out;
}

const localCache = new Map<string, LocalDateTime>();

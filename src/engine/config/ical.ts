import type { Holiday } from "../domain.js";
import { isIsoDate } from "./calendar-input.js";

/**
 * A small, tolerant reader for holiday feeds (RFC 5545 VEVENTs). It takes what a public
 * holiday calendar export contains — all-day or timed DTSTART, DTEND, SUMMARY — and never
 * throws: anything it cannot read is counted in `skipped`, because admins paste files
 * from many sources and one odd event must not lose the other hundred.
 *
 * Not supported (counted as read from DTSTART only): RRULE/RDATE/EXDATE recurrence.
 * Timed events use the date as written (local or floating); a UTC ("Z") time is not
 * shifted into the calendar's zone.
 */

export const MAX_EVENTS = 5000;
/** Longer events are almost certainly not holidays (e.g. "whole year" markers). */
export const MAX_EVENT_DAYS = 31;

export interface IcalImport {
  holidays: Holiday[];
  /** Events not turned into holidays: unreadable dates, too long, beyond the cap. */
  skipped: number;
}

/** RFC 5545 §3.1: a CRLF followed by one space or tab continues the previous line. */
export function unfoldLines(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r\n|\n|\r/)) {
    if ((raw.startsWith(" ") || raw.startsWith("\t")) && out.length > 0) {
      out[out.length - 1] += raw.slice(1);
    } else {
      out.push(raw);
    }
  }
  return out;
}

interface ContentLine {
  name: string;
  params: Record<string, string>;
  value: string;
}

/** NAME;PARAM=x;PARAM="a:b":VALUE — the first colon outside double quotes ends the params. */
function parseLine(line: string): ContentLine | null {
  let inQuote = false;
  let colon = -1;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') inQuote = !inQuote;
    else if (c === ":" && !inQuote) {
      colon = i;
      break;
    }
  }
  if (colon <= 0) return null;
  const [name = "", ...rawParams] = line.slice(0, colon).split(";");
  const params: Record<string, string> = {};
  for (const p of rawParams) {
    const eq = p.indexOf("=");
    if (eq > 0) params[p.slice(0, eq).toUpperCase()] = p.slice(eq + 1).replace(/^"|"$/g, "");
  }
  return { name: name.trim().toUpperCase(), params, value: line.slice(colon + 1) };
}

/** RFC 5545 §3.3.11 TEXT escapes. */
function unescapeText(v: string): string {
  return v.replace(/\\([\\;,nN])/g, (_m, c: string) => (c === "n" || c === "N" ? " " : c));
}

interface ParsedDate {
  date: string;
  /** True for DATE values or a date-time at exactly midnight: an exclusive DTEND then ends the day before. */
  atMidnight: boolean;
}

function parseDateValue(value: string): ParsedDate | null {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?Z?)?$/.exec(value.trim());
  if (!m) return null;
  const date = `${m[1]}-${m[2]}-${m[3]}`;
  if (!isIsoDate(date)) return null;
  const atMidnight = m[4] === undefined || (m[4] === "00" && m[5] === "00" && (m[6] ?? "00") === "00");
  return { date, atMidnight };
}

function addDays(date: string, n: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);
}

interface RawEvent {
  start?: string;
  end?: string;
  summary?: string;
}

/** Expands one event to its dates; null when unreadable. DTEND is exclusive (RFC 5545 §3.6.1). */
function eventDates(ev: RawEvent): string[] | null {
  if (ev.start === undefined) return null;
  const start = parseDateValue(ev.start);
  if (!start) return null;
  if (ev.end === undefined) return [start.date];
  const end = parseDateValue(ev.end);
  if (!end) return null;
  const last = end.atMidnight ? addDays(end.date, -1) : end.date;
  const span = daysBetween(start.date, last);
  if (span < 0) return [start.date];
  if (span + 1 > MAX_EVENT_DAYS) return null;
  return Array.from({ length: span + 1 }, (_v, i) => addDays(start.date, i));
}

/** Reads VEVENTs into holidays, first name wins for a date, sorted by date. Never throws. */
export function parseIcalHolidays(text: string, maxEvents = MAX_EVENTS): IcalImport {
  const byDate = new Map<string, string>();
  let skipped = 0;
  let events = 0;
  let current: RawEvent | null = null;
  // Components nested in a VEVENT (VALARM) have their own DTSTART/SUMMARY; ignore those.
  let nested = 0;
  for (const line of unfoldLines(typeof text === "string" ? text : "")) {
    const cl = parseLine(line);
    if (!cl) continue;
    const value = cl.value.trim().toUpperCase();
    if (cl.name === "BEGIN") {
      if (current) nested++;
      else if (value === "VEVENT") current = {};
      continue;
    }
    if (cl.name === "END") {
      if (current && nested > 0) nested--;
      else if (current && value === "VEVENT") {
        events++;
        const ev: RawEvent = current;
        current = null;
        if (events > maxEvents) {
          skipped++;
          continue;
        }
        const dates = eventDates(ev);
        if (!dates) {
          skipped++;
          continue;
        }
        const name = unescapeText(ev.summary ?? "")
          .replace(/[\u0000-\u001f\u007f]/g, " ")
          .trim()
          .slice(0, 100);
        for (const d of dates) if (!byDate.has(d)) byDate.set(d, name || "Holiday");
      }
      continue;
    }
    if (!current || nested > 0) continue;
    if (cl.name === "DTSTART") current.start = cl.value;
    else if (cl.name === "DTEND") current.end = cl.value;
    else if (cl.name === "SUMMARY") current.summary = cl.value;
  }
  // An event never closed (truncated paste) is unreadable, not silently dropped.
  if (current) skipped++;
  const holidays = [...byDate.entries()]
    .map(([date, name]) => ({ date, name }))
    .sort((a, b) => a.date.localeCompare(b.date));
  return { holidays, skipped };
}

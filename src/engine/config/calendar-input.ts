import type { Holiday, OpeningInterval } from "../domain.js";
import type { Problems } from "../errors.js";
import { checkName, isValidTimeZone } from "./validate.js";

/**
 * Shape checks for a business-hours calendar (SPEC §2). Deliberately no business-hours
 * arithmetic here: that lives in engine/time/calendar.ts (another branch); this only
 * decides whether the stored data is well-formed, naming each bad field.
 */

export const MAX_INTERVALS = 50;
export const MAX_HOLIDAYS = 500;
export const MAX_NAME = 100;

const START_RE = /^(?:[01]\d|2[0-3]):[0-5]\d$/;
const END_RE = /^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A real proleptic-Gregorian date "YYYY-MM-DD" (so 2026-02-30 and 2026-13-01 fail). */
export function isIsoDate(value: string): boolean {
  const m = DATE_RE.exec(value);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1900 || y > 2999) return false;
  const dt = new Date(Date.UTC(y, mo - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === mo - 1 && dt.getUTCDate() === d;
}

export interface CalendarShapeInput {
  name?: string;
  timeZone?: string;
  intervals?: readonly { weekday: number; start: string; end: string }[];
  holidays?: readonly { date: string; name: string }[];
}

/**
 * Adds a problem per bad field (`intervals[2].start`, `holidays[0].date`, …). Only the
 * fields present are checked, so updates can send a subset.
 */
export function validateCalendarInput(p: Problems, input: CalendarShapeInput): void {
  checkName(p, "name", input.name, MAX_NAME);
  if (input.timeZone !== undefined) {
    p.check(isValidTimeZone(input.timeZone), "timeZone", "must be an IANA time zone such as Europe/Berlin");
  }
  if (input.intervals !== undefined) {
    p.check(input.intervals.length <= MAX_INTERVALS, "intervals", `at most ${MAX_INTERVALS} intervals`);
    input.intervals.slice(0, MAX_INTERVALS).forEach((iv, i) => {
      p.check(
        Number.isInteger(iv.weekday) && iv.weekday >= 1 && iv.weekday <= 7,
        `intervals[${i}].weekday`,
        "must be 1 (Monday) to 7 (Sunday)",
      );
      p.check(START_RE.test(iv.start), `intervals[${i}].start`, 'must be "HH:MM" from 00:00 to 23:59');
      p.check(END_RE.test(iv.end), `intervals[${i}].end`, 'must be "HH:MM" from 00:00 to 23:59, or 24:00');
    });
  }
  if (input.holidays !== undefined) {
    p.check(input.holidays.length <= MAX_HOLIDAYS, "holidays", `at most ${MAX_HOLIDAYS} holidays`);
    const seen = new Set<string>();
    input.holidays.slice(0, MAX_HOLIDAYS).forEach((h, i) => {
      if (!isIsoDate(h.date)) {
        p.add(`holidays[${i}].date`, 'must be a real date "YYYY-MM-DD"');
      } else if (seen.has(h.date)) {
        p.add(`holidays[${i}].date`, "is listed twice");
      }
      seen.add(h.date);
      p.check(h.name.length <= MAX_NAME, `holidays[${i}].name`, `at most ${MAX_NAME} characters`);
      p.check(
        !/[\u0000-\u001f\u007f]/.test(h.name),
        `holidays[${i}].name`,
        "must not contain control characters",
      );
    });
  }
}

/** Canonical stored order: by weekday then start; holidays by date. Validated input only. */
export function normaliseIntervals(intervals: readonly { weekday: number; start: string; end: string }[]) {
  return intervals
    .map((iv) => ({ weekday: iv.weekday, start: iv.start, end: iv.end }) as OpeningInterval)
    .sort((a, b) => a.weekday - b.weekday || a.start.localeCompare(b.start) || a.end.localeCompare(b.end));
}

export function normaliseHolidays(holidays: readonly { date: string; name: string }[]): Holiday[] {
  return holidays
    .map((h) => ({ date: h.date, name: h.name.trim() }))
    .sort((a, b) => a.date.localeCompare(b.date));
}

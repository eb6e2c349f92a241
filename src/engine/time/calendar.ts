import { textProblem } from "../config/validate.js";
import type { BusinessCalendar, Holiday, IsoWeekday } from "../domain.js";
import type { FieldProblem } from "../errors.js";
import { clip, stripControls, wellFormed } from "../text.js";
import {
  assertInstant,
  DAY_MS,
  getZone,
  isValidTimeZone,
  type OffsetSegment,
  offsetAt,
  segmentAt,
  type Zone,
} from "./zone.js";

/**
 * Business-hours math on a `BusinessCalendar` (SPEC §2): used by SLA deadlines,
 * auto-assignment windows, the `receivedTime` rule condition and `@{next_working_date}`.
 *
 * Semantics (the one definition everything else follows):
 * - An instant is *open* when its local wall time, in the calendar's zone, falls inside
 *   an opening interval of its local date and that date is not a holiday.
 * - An interval whose end is <= its start runs past midnight into the next local date
 *   (`"22:00"–"06:00"`; `"08:00"–"08:00"` is a full 24 hours; `"00:00"–"24:00"` the
 *   whole day). A holiday closes its whole local date, 00:00–24:00, including the
 *   after-midnight tail of the previous evening's interval — but not the evening part of
 *   an interval that starts on the day before.
 * - DST follows from the definition: on a spring-forward day the skipped wall times
 *   simply do not occur (an interval 01:00–03:00 on 2026-03-29 in Berlin is one real
 *   hour); on a fall-back day the repeated wall hour is open both times it occurs.
 * - Business time is real elapsed time while open, in milliseconds; the minute functions
 *   divide by 60,000, so `businessMinutesBetween` can return a fraction when an input
 *   is not on a whole minute.
 *
 * Calendars are compiled once per object (a WeakMap), so treat a `BusinessCalendar` as
 * immutable once it has been used: build a new object after changing it.
 */

const MINUTE_MS = 60_000;

/** Limits enforced by `validateCalendar` (and so by every function here). */
export const CALENDAR_LIMITS = { intervals: 50, holidays: 200, holidayName: 100 } as const;

export class CalendarNeverOpenError extends Error {
  constructor(timeZone: string) {
    super(`Business-hours calendar (${timeZone}) has no opening hours, so it never opens`);
    this.name = "CalendarNeverOpenError";
  }
}

export class InvalidCalendarError extends Error {
  readonly problems: FieldProblem[];
  constructor(problems: FieldProblem[]) {
    super(`Invalid business-hours calendar: ${problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`);
    this.name = "InvalidCalendarError";
    this.problems = problems;
  }
}

interface CompiledCalendar {
  readonly timeZone: string;
  readonly zone: Zone;
  /** Index = ISO weekday; flat `[start, end, start, end…]` ms after local midnight, merged. */
  readonly days: readonly (readonly number[])[];
  /** Index = ISO weekday; an interval starts on that weekday (for next working date). */
  readonly startsOn: readonly boolean[];
  /** Open ms in one holiday-free, DST-free week. */
  readonly weekMs: number;
  /** Every local time of every weekday is open. */
  readonly alwaysOpen: boolean;
  /** Holiday dates as days since 1970-01-01, ascending, de-duplicated. */
  readonly holidays: readonly number[];
  readonly holidaySet: ReadonlySet<number>;
  readonly lastHoliday: number;
}

const compiled = new WeakMap<BusinessCalendar, CompiledCalendar>();

const TIME_RE = /^([01]\d|2[0-3]):([0-5]\d)$/;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

function minutesOf(hhmm: string): number {
  if (hhmm === "24:00") return 1440;
  const m = TIME_RE.exec(hhmm);
  if (m === null) return Number.NaN;
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Days since 1970-01-01 for a real "YYYY-MM-DD" date, or null. */
export function dayNumber(date: string): number | null {
  const m = DATE_RE.exec(date);
  if (m === null) return null;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  if (y < 1000 || mo < 1 || mo > 12 || d < 1 || d > 31) return null;
  const t = Date.UTC(y, mo - 1, d);
  const check = new Date(t);
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
  return t / DAY_MS;
}

/** "YYYY-MM-DD" of a day number. */
export function dateOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** ISO weekday of a day number: 1970-01-01 was a Thursday (4). */
export function weekdayOfDay(day: number): IsoWeekday {
  return (((((day + 3) % 7) + 7) % 7) + 1) as IsoWeekday;
}

/** Input accepted by `validateCalendar`: the calendar as an API client may send it. */
export interface CalendarInput {
  timeZone: string;
  intervals: readonly { weekday: number; start: string; end: string }[];
  holidays: readonly { date: string; name: string }[];
}

/** Every problem with a calendar, with field paths such as `intervals[2].start`. */
export function validateCalendar(input: CalendarInput): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  if (typeof input.timeZone !== "string" || !isValidTimeZone(input.timeZone)) {
    add("timeZone", "must be an IANA time zone such as Europe/Berlin");
  }
  if (!Array.isArray(input.intervals)) add("intervals", "must be a list");
  else {
    if (input.intervals.length > CALENDAR_LIMITS.intervals) {
      add("intervals", `at most ${CALENDAR_LIMITS.intervals} opening intervals`);
    }
    input.intervals.forEach((iv, i) => {
      if (!Number.isInteger(iv.weekday) || iv.weekday < 1 || iv.weekday > 7) {
        add(`intervals[${i}].weekday`, "must be 1 (Monday) to 7 (Sunday)");
      }
      if (typeof iv.start !== "string" || !TIME_RE.test(iv.start)) {
        add(`intervals[${i}].start`, 'must be "HH:MM" between 00:00 and 23:59');
      }
      if (typeof iv.end !== "string" || (iv.end !== "24:00" && !TIME_RE.test(iv.end))) {
        add(`intervals[${i}].end`, 'must be "HH:MM" between 00:00 and 24:00');
      }
    });
  }
  if (!Array.isArray(input.holidays)) add("holidays", "must be a list");
  else {
    if (input.holidays.length > CALENDAR_LIMITS.holidays) {
      add("holidays", `at most ${CALENDAR_LIMITS.holidays} holidays`);
    }
    const seen = new Set<string>();
    input.holidays.forEach((h, i) => {
      if (typeof h.date !== "string" || dayNumber(h.date) === null) {
        add(`holidays[${i}].date`, 'must be a real date "YYYY-MM-DD"');
      } else if (seen.has(h.date)) {
        add(`holidays[${i}].date`, `${h.date} is listed twice`);
      } else seen.add(h.date);
      if (typeof h.name !== "string" || h.name.trim().length === 0) {
        add(`holidays[${i}].name`, "must not be empty");
      } else if (h.name.length > CALENDAR_LIMITS.holidayName) {
        add(`holidays[${i}].name`, `at most ${CALENDAR_LIMITS.holidayName} characters`);
      } else {
        const problem = textProblem(h.name);
        if (problem !== null) add(`holidays[${i}].name`, problem);
      }
    });
  }
  return problems;
}

function mergeRanges(ranges: [number, number][]): number[] {
  ranges.sort((a, b) => a[0] - b[0]);
  const flat: number[] = [];
  for (const [s, e] of ranges) {
    const n = flat.length;
    if (n > 0 && s <= (flat[n - 1] as number)) flat[n - 1] = Math.max(flat[n - 1] as number, e);
    else flat.push(s, e);
  }
  return flat;
}

function compile(cal: BusinessCalendar): CompiledCalendar {
  let c = compiled.get(cal);
  if (c !== undefined) return c;
  const problems = validateCalendar(cal);
  if (problems.length > 0) throw new InvalidCalendarError(problems);
  const ranges: [number, number][][] = [[], [], [], [], [], [], [], []];
  const startsOn = [false, false, false, false, false, false, false, false];
  for (const iv of cal.intervals) {
    const s = minutesOf(iv.start) * MINUTE_MS;
    const e = minutesOf(iv.end) * MINUTE_MS;
    startsOn[iv.weekday] = true;
    if (e > s) ranges[iv.weekday]?.push([s, e]);
    else {
      ranges[iv.weekday]?.push([s, DAY_MS]);
      if (e > 0) ranges[(iv.weekday % 7) + 1]?.push([0, e]);
    }
  }
  const days = ranges.map(mergeRanges);
  let weekMs = 0;
  let alwaysOpen = true;
  for (let w = 1; w <= 7; w++) {
    const d = days[w] as number[];
    for (let i = 0; i < d.length; i += 2) weekMs += (d[i + 1] as number) - (d[i] as number);
    if (!(d.length === 2 && d[0] === 0 && d[1] === DAY_MS)) alwaysOpen = false;
  }
  const holidays = [...new Set(cal.holidays.map((h) => dayNumber(h.date) as number))].sort((a, b) => a - b);
  c = {
    timeZone: cal.timeZone,
    zone: getZone(cal.timeZone),
    days,
    startsOn,
    weekMs,
    alwaysOpen,
    holidays,
    holidaySet: new Set(holidays),
    lastHoliday: holidays.length > 0 ? (holidays[holidays.length - 1] as number) : Number.NEGATIVE_INFINITY,
  };
  compiled.set(cal, c);
  return c;
}

/** True when a holiday falls on a day number in `[from, to)`. */
function holidayWithin(c: CompiledCalendar, from: number, to: number): boolean {
  const h = c.holidays;
  let lo = 0;
  let hi = h.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((h[mid] as number) < from) lo = mid + 1;
    else hi = mid;
  }
  return lo < h.length && (h[lo] as number) < to;
}

function localDay(c: CompiledCalendar, t: number): number {
  return Math.floor((t + offsetAt(c.zone, t)) / DAY_MS);
}

/**
 * The walk every search shares: calls `visit(start, end)` for each open stretch after
 * `from`, in time order, until `visit` returns false or `limit` (an instant) is passed.
 * Stretches are split at local midnights and offset changes; callers that need whole
 * open periods join touching ones. Time advances per offset segment, and within one
 * per local day, so wall time is monotonic in each inner loop even across a fall-back.
 */
function walk(
  c: CompiledCalendar,
  from: number,
  limit: number,
  visit: (s: number, e: number) => boolean,
): void {
  const seg: OffsetSegment = { offset: 0, end: 0 };
  let u = from;
  while (u < limit) {
    segmentAt(c.zone, u, seg);
    const o = seg.offset;
    const segEnd = Math.min(seg.end, limit);
    for (let day = Math.floor((u + o) / DAY_MS); ; day++) {
      const dayStart = day * DAY_MS - o;
      if (dayStart >= segEnd) break;
      if (c.holidaySet.has(day)) continue;
      const tpl = c.days[weekdayOfDay(day)] as readonly number[];
      for (let i = 0; i < tpl.length; i += 2) {
        let s = dayStart + (tpl[i] as number);
        let e = dayStart + (tpl[i + 1] as number);
        if (e <= u) continue;
        if (s >= segEnd) break;
        if (s < u) s = u;
        if (e > segEnd) e = segEnd;
        if (!visit(s, e)) return;
      }
    }
    u = segEnd;
  }
}

/**
 * Instants at which `amounts[i]` ms of business time have elapsed since `from`, in one
 * walk. `amounts` must be ascending and > 0. Whole holiday-free weeks inside one offset
 * segment are skipped arithmetically, so a 1,000-day target costs ~150 steps, not 1,000.
 */
function advance(c: CompiledCalendar, from: number, amounts: readonly number[]): number[] {
  const out: number[] = [];
  if (amounts.length === 0) return out;
  if (c.weekMs === 0) throw new CalendarNeverOpenError(c.timeZone);
  const last = amounts[amounts.length - 1] as number;
  // Past the last holiday every week holds weekMs (less at most an hour in a DST week),
  // so this bound is only a guard against a bug turning into an endless loop.
  const startDay = localDay(c, from);
  const capDay = Math.max(startDay, c.lastHoliday) + Math.ceil((last / c.weekMs) * 7 * 1.1) + 60;
  const seg: OffsetSegment = { offset: 0, end: 0 };
  let used = 0;
  let k = 0;
  let u = from;
  for (;;) {
    segmentAt(c.zone, u, seg);
    const o = seg.offset;
    const segEnd = seg.end;
    let day = Math.floor((u + o) / DAY_MS);
    for (;;) {
      const dayStart = day * DAY_MS - o;
      if (dayStart >= segEnd) break;
      if (day > capDay)
        throw new Error("Business-hours walk ran past its bound; the calendar looks never open");
      // Skip a whole week when it is certainly inside this segment, holiday-free, and
      // strictly before the next target (strictly: a target equal to a week's business
      // time ends at the week's last closing, not at its final midnight).
      if (
        dayStart >= u &&
        (amounts[k] as number) - used > c.weekMs &&
        dayStart + 7 * DAY_MS <= segEnd &&
        !holidayWithin(c, day, day + 7)
      ) {
        used += c.weekMs;
        day += 7;
        continue;
      }
      if (!c.holidaySet.has(day)) {
        const tpl = c.days[weekdayOfDay(day)] as readonly number[];
        for (let i = 0; i < tpl.length; i += 2) {
          let s = dayStart + (tpl[i] as number);
          let e = dayStart + (tpl[i + 1] as number);
          if (e <= u) continue;
          if (s >= segEnd) break;
          if (s < u) s = u;
          if (e > segEnd) e = segEnd;
          const len = e - s;
          while ((amounts[k] as number) - used <= len) {
            out.push(s + (amounts[k] as number) - used);
            if (++k === amounts.length) return out;
          }
          used += len;
        }
      }
      day++;
    }
    u = segEnd;
  }
}

/** Business ms in `[a, b)`. */
function measure(c: CompiledCalendar, a: number, b: number): number {
  if (b <= a || c.weekMs === 0) return 0;
  const seg: OffsetSegment = { offset: 0, end: 0 };
  let total = 0;
  let u = a;
  while (u < b) {
    segmentAt(c.zone, u, seg);
    const o = seg.offset;
    const segEnd = Math.min(seg.end, b);
    for (let day = Math.floor((u + o) / DAY_MS); ; day++) {
      const dayStart = day * DAY_MS - o;
      if (dayStart >= segEnd) break;
      if (dayStart >= u && dayStart + 7 * DAY_MS <= segEnd && !holidayWithin(c, day, day + 7)) {
        total += c.weekMs;
        day += 6;
        continue;
      }
      if (c.holidaySet.has(day)) continue;
      const tpl = c.days[weekdayOfDay(day)] as readonly number[];
      for (let i = 0; i < tpl.length; i += 2) {
        let s = dayStart + (tpl[i] as number);
        let e = dayStart + (tpl[i + 1] as number);
        if (e <= u) continue;
        if (s >= segEnd) break;
        if (s < u) s = u;
        if (e > segEnd) e = segEnd;
        total += e - s;
      }
    }
    u = segEnd;
  }
  return total;
}

function instant(d: Date, what: string): number {
  const t = d.getTime();
  assertInstant(t, what);
  return t;
}

/** How far ahead a search looks before concluding "never": past the last holiday, any
 * calendar with opening hours opens (and any not open 24/7 closes) within a week, or
 * two when a DST gap swallows an interval. */
function searchLimit(c: CompiledCalendar, t: number): number {
  return (Math.max(localDay(c, t), c.lastHoliday) + 16) * DAY_MS;
}

/** Whether the calendar is open at `at`. */
export function isOpen(cal: BusinessCalendar, at: Date): boolean {
  const c = compile(cal);
  const t = instant(at, "at");
  const wall = t + offsetAt(c.zone, t);
  const day = Math.floor(wall / DAY_MS);
  if (c.holidaySet.has(day)) return false;
  const ms = wall - day * DAY_MS;
  const tpl = c.days[weekdayOfDay(day)] as readonly number[];
  for (let i = 0; i < tpl.length; i += 2) {
    if (ms < (tpl[i] as number)) return false;
    if (ms < (tpl[i + 1] as number)) return true;
  }
  return false;
}

/** `at` itself when open, else the next instant the calendar opens; null if it never does. */
export function nextOpening(cal: BusinessCalendar, at: Date): Date | null {
  const c = compile(cal);
  const t = instant(at, "at");
  if (c.weekMs === 0) return null;
  let found: number | null = null;
  walk(c, t, searchLimit(c, t), (s) => {
    found = s;
    return false;
  });
  return found === null ? null : new Date(found);
}

/**
 * The end of the open period containing `at` or, when closed, of the next one; null
 * when the calendar never opens or, from `at` on, never closes (24/7 with no holiday
 * ahead). Back-to-back intervals and ones running past midnight count as one period.
 */
export function nextClosing(cal: BusinessCalendar, at: Date): Date | null {
  const c = compile(cal);
  const t = instant(at, "at");
  if (c.weekMs === 0) return null;
  let start: number | null = null;
  walk(c, t, searchLimit(c, t), (s) => {
    start = s;
    return false;
  });
  if (start === null) return null;
  const from: number = start;
  // Only holidays close a 24/7 calendar, so look as far as the next one; any other
  // calendar closes within a week (two if a DST gap hides its only closed hour).
  let limit = (localDay(c, from) + 16) * DAY_MS;
  let periodEnd = from;
  if (c.alwaysOpen) {
    const firstDay = localDay(c, from);
    const next = c.holidays.find((h) => h >= firstDay);
    if (next === undefined) return null;
    limit = (next + 2) * DAY_MS;
    // Open without a break until that holiday: start the walk just before it.
    periodEnd = Math.max(from, (next - 2) * DAY_MS);
  }
  let closed = false;
  walk(c, periodEnd, limit, (s, e) => {
    if (s > periodEnd) {
      closed = true;
      return false;
    }
    periodEnd = e;
    return true;
  });
  // A walk that ran into its limit still open found no closing (only possible 24/7).
  return closed || periodEnd < limit ? new Date(periodEnd) : null;
}

function checkMinutes(minutes: number): number {
  if (!Number.isFinite(minutes) || minutes < 0) {
    throw new RangeError(`Business minutes must be a finite number >= 0, got ${minutes}`);
  }
  return Math.round(minutes * MINUTE_MS);
}

/**
 * The earliest instant by which `minutes` of business time have elapsed since `from`.
 * The result is open, or the exact end of an open period (a target met by 17:00 Friday
 * is due 17:00 Friday, not Monday 08:00); `minutes = 0` returns `from`.
 * Throws CalendarNeverOpenError for a calendar without opening hours.
 */
export function addBusinessMinutes(cal: BusinessCalendar, from: Date, minutes: number): Date {
  const c = compile(cal);
  const t = instant(from, "from");
  const ms = checkMinutes(minutes);
  if (ms === 0) return new Date(t);
  return new Date(advance(c, t, [ms])[0] as number);
}

/**
 * `addBusinessMinutes` for several amounts from one start, in a single walk (an SLA's
 * warning and due times). Results are in the order of `minutes`.
 */
export function addBusinessMinutesMany(
  cal: BusinessCalendar,
  from: Date,
  minutes: readonly number[],
): Date[] {
  const c = compile(cal);
  const t = instant(from, "from");
  const ms = minutes.map(checkMinutes);
  const order = ms.map((_, i) => i).sort((a, b) => (ms[a] as number) - (ms[b] as number));
  const positive = order.filter((i) => (ms[i] as number) > 0);
  const reached = advance(
    c,
    t,
    positive.map((i) => ms[i] as number),
  );
  const out: Date[] = ms.map(() => new Date(t));
  positive.forEach((i, j) => {
    out[i] = new Date(reached[j] as number);
  });
  return out;
}

/** Business minutes in `[a, b)`; 0 when `b <= a` or the calendar never opens. */
export function businessMinutesBetween(cal: BusinessCalendar, a: Date, b: Date): number {
  const c = compile(cal);
  return measure(c, instant(a, "a"), instant(b, "b")) / MINUTE_MS;
}

/** The local "YYYY-MM-DD" of `at` in the calendar's zone. */
export function localDate(cal: BusinessCalendar, at: Date): string {
  const c = compile(cal);
  return dateOfDay(localDay(c, instant(at, "at")));
}

/**
 * "YYYY-MM-DD" of the first local date after `at`'s own on which an opening interval
 * starts and that is no holiday — for the `@{next_working_date}` auto-reply tag. (The
 * after-midnight tail of a night shift does not make its morning a working date.)
 * Throws CalendarNeverOpenError for a calendar without opening hours.
 */
export function nextWorkingDate(cal: BusinessCalendar, at: Date): string {
  const c = compile(cal);
  const today = localDay(c, instant(at, "at"));
  if (c.weekMs === 0) throw new CalendarNeverOpenError(c.timeZone);
  const cap = Math.max(today, c.lastHoliday) + 8;
  for (let day = today + 1; day <= cap; day++) {
    if (c.startsOn[weekdayOfDay(day)] && !c.holidaySet.has(day)) return dateOfDay(day);
  }
  throw new CalendarNeverOpenError(c.timeZone);
}

// ---------------------------------------------------------------------------------------
// iCalendar holidays (RFC 5545)

/** At most this many VEVENTs are read from one file; the rest are ignored. */
export const ICAL_MAX_EVENTS = 5_000;
/**
 * A longer event is skipped: it is almost certainly not a holiday ("whole year" markers,
 * a bogus DTEND), and importing it would close the calendar for months.
 */
export const ICAL_MAX_EVENT_DAYS = 31;

/** What an import made of a file: the holidays, and how many events it could not use. */
export interface IcalImport {
  holidays: Holiday[];
  /** Events without a readable date, cancelled, too long, cut off, or beyond the event cap. */
  skipped: number;
}

interface IcalProp {
  name: string;
  params: Map<string, string>;
  value: string;
}

function parseProp(line: string): IcalProp | null {
  // The value starts after the first colon that is not inside a quoted parameter value.
  let quoted = false;
  let colon = -1;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === ":" && !quoted) {
      colon = i;
      break;
    }
  }
  if (colon <= 0) return null;
  const [name = "", ...rawParams] = line.slice(0, colon).split(";");
  const params = new Map<string, string>();
  for (const p of rawParams) {
    const eq = p.indexOf("=");
    if (eq > 0) params.set(p.slice(0, eq).toUpperCase(), p.slice(eq + 1).replace(/^"|"$/g, ""));
  }
  return { name: name.toUpperCase(), params, value: line.slice(colon + 1) };
}

const ICAL_DATE_RE = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})Z?)?$/;

/** Day number and whether the value had a time part; null when malformed. */
function icalDay(value: string): { day: number; midnight: boolean; hasTime: boolean } | null {
  const m = ICAL_DATE_RE.exec(value.trim());
  if (m === null) return null;
  const day = dayNumber(`${m[1]}-${m[2]}-${m[3]}`);
  if (day === null) return null;
  const hasTime = m[4] !== undefined;
  return { day, hasTime, midnight: !hasTime || (m[4] === "00" && m[5] === "00" && m[6] === "00") };
}

/**
 * A SUMMARY as a holiday name `validateCalendar` accepts: control characters (a TAB, a
 * NUL, which jsonb refuses, a NEL) become spaces, unpaired surrogates U+FFFD, and the cut
 * at the length limit never keeps half of a surrogate pair.
 */
function holidayName(value: string): string {
  return clip(stripControls(wellFormed(unescapeText(value))), CALENDAR_LIMITS.holidayName).trim();
}

function unescapeText(value: string): string {
  return value.replace(/\\([\\;,nN])/g, (_, ch: string) => (ch === "n" || ch === "N" ? " " : ch)).trim();
}

/**
 * Holidays from an iCalendar file: each VEVENT's DTSTART date (`VALUE=DATE` or a
 * date-time, whose written date is taken as the local date), named by its SUMMARY; a
 * DTEND (exclusive, RFC 5545 §3.6.1) or a `P…D`/`P…W` DURATION spreads it over several
 * dates. Folded lines are unfolded. RRULEs are not expanded (only the first occurrence
 * counts). Malformed events are skipped; garbage yields `[]`, never an exception.
 * Result: ascending by date, one entry per date (the first event's name wins).
 */
export function parseIcalHolidays(ics: string): Holiday[] {
  return parseIcalFeed(ics).holidays;
}

/** `parseIcalHolidays` with the count of events it skipped (for import reports). */
export function parseIcalFeed(ics: string, maxEvents: number = ICAL_MAX_EVENTS): IcalImport {
  if (typeof ics !== "string") return { holidays: [], skipped: 0 };
  const lines = ics
    .replace(/\r\n?/g, "\n")
    .replace(/\n[ \t]/g, "")
    .split("\n");
  const byDay = new Map<number, string>();
  let events = 0;
  let skipped = 0;
  let inEvent = false;
  let depth = 0;
  let props: IcalProp[] = [];
  for (const line of lines) {
    const upper = line.toUpperCase();
    if (upper.startsWith("BEGIN:")) {
      // A VEVENT never nests: a new one while one is open means the open one was cut
      // off (no END), so it is dropped rather than swallowing every later event.
      if (upper === "BEGIN:VEVENT") {
        if (inEvent) skipped++;
        inEvent = true;
        depth = 0;
        props = [];
      } else if (inEvent) depth++;
      continue;
    }
    if (upper.startsWith("END:")) {
      if (!inEvent) continue;
      if (depth > 0) {
        depth--;
        continue;
      }
      if (upper !== "END:VEVENT") continue;
      inEvent = false;
      if (++events > maxEvents) skipped++;
      else if (!addEvent(props, byDay)) skipped++;
      continue;
    }
    // Properties of nested components (VALARM) are not the event's own.
    if (inEvent && depth === 0) {
      const prop = parseProp(line);
      if (prop !== null) props.push(prop);
    }
  }
  if (inEvent) skipped++;
  const holidays = [...byDay.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([day, name]) => ({ date: dateOfDay(day), name }));
  return { holidays, skipped };
}

/** Adds one VEVENT's dates; false when it is unusable (and so skipped). */
function addEvent(props: IcalProp[], byDay: Map<number, string>): boolean {
  const get = (name: string) => props.find((p) => p.name === name);
  const startProp = get("DTSTART");
  if (startProp === undefined) return false;
  const status = get("STATUS");
  if (status !== undefined && status.value.trim().toUpperCase() === "CANCELLED") return false;
  const start = icalDay(startProp.value);
  if (start === null) return false;
  let days = 1;
  const endProp = get("DTEND");
  const durationProp = get("DURATION");
  if (endProp !== undefined) {
    const end = icalDay(endProp.value);
    if (end === null) return false;
    // DTEND is exclusive: a date, or a date-time at midnight, ends the day before.
    days = end.midnight ? end.day - start.day : end.day - start.day + 1;
    if (days < 1) days = 1;
  } else if (durationProp !== undefined) {
    const m = /^P(?:(\d{1,4})W|(\d{1,4})D)/.exec(durationProp.value.trim().toUpperCase());
    if (m !== null) days = Math.max(1, m[1] !== undefined ? Number(m[1]) * 7 : Number(m[2]));
  }
  if (days > ICAL_MAX_EVENT_DAYS) return false;
  const summary = get("SUMMARY");
  const name = summary !== undefined ? holidayName(summary.value) : "";
  for (let d = 0; d < days; d++) {
    if (!byDay.has(start.day + d)) byDay.set(start.day + d, name.length > 0 ? name : "Holiday");
  }
  return true;
}

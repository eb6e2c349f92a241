/**
 * UTC offsets of IANA time zones, from the ICU data behind `Intl.DateTimeFormat` (no date
 * library is installed, and Node's ICU is kept current with tzdata).
 *
 * `formatToParts` costs ~10–15 µs, far too slow to call per business-hours computation,
 * so each zone keeps a lazily built table per UTC year: the offset on 1 January and every
 * transition within the year, found by probing once a day and bisecting to the second.
 * After that an offset lookup is a couple of comparisons.
 *
 * Assumption: a zone changes its offset at most once within any 24 hours. That holds for
 * every transition in tzdata's modern history; a pair closer together would be missed.
 */

export const DAY_MS = 86_400_000;

// The supported range keeps `Date.UTC` and Intl's era-less year numbers unambiguous.
const MIN_INSTANT = Date.UTC(1000, 0, 1);
const MAX_INSTANT = Date.UTC(9999, 11, 31);

interface YearTable {
  /** First instant of the UTC year. */
  readonly start: number;
  /** First instant of the following UTC year. */
  readonly end: number;
  /** Offset in force at `start`, ms (local wall time minus UTC). */
  readonly startOffset: number;
  /** Instants at which the offset changes, ascending. */
  readonly at: number[];
  /** `offsets[i]` applies from `at[i]` on. */
  readonly offsets: number[];
}

export interface Zone {
  readonly name: string;
  readonly format: Intl.DateTimeFormat;
  readonly years: Map<number, YearTable>;
  /** The table used last: consecutive lookups almost always fall into the same year. */
  last: YearTable | null;
}

/** A stretch of time with one offset: `[from, end)`. */
export interface OffsetSegment {
  offset: number;
  end: number;
}

const zones = new Map<string, Zone>();

/** The zone for an IANA name; throws RangeError for a name Intl does not know. */
export function getZone(name: string): Zone {
  let zone = zones.get(name);
  if (zone === undefined) {
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone: name,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    zone = { name, format, years: new Map(), last: null };
    zones.set(name, zone);
  }
  return zone;
}

/** True when Intl accepts the name as a time zone. */
export function isValidTimeZone(name: string): boolean {
  if (name.length === 0 || name.length > 64) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export function assertInstant(t: number, what = "date"): void {
  if (!Number.isFinite(t)) throw new RangeError(`Invalid ${what}`);
  if (t < MIN_INSTANT || t > MAX_INSTANT) {
    throw new RangeError(`${what} ${new Date(t).toISOString()} is outside the supported years 1000–9999`);
  }
}

/** The offset at `t` straight from Intl (slow; only used to build the year tables). */
function probeOffset(zone: Zone, t: number): number {
  const seconds = Math.floor(t / 1000) * 1000;
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  for (const part of zone.format.formatToParts(seconds)) {
    switch (part.type) {
      case "year":
        y = Number(part.value);
        break;
      case "month":
        mo = Number(part.value);
        break;
      case "day":
        d = Number(part.value);
        break;
      case "hour":
        h = Number(part.value);
        break;
      case "minute":
        mi = Number(part.value);
        break;
      case "second":
        s = Number(part.value);
        break;
    }
  }
  return Date.UTC(y, mo - 1, d, h, mi, s) - seconds;
}

function buildYear(zone: Zone, year: number): YearTable {
  const start = Date.UTC(year, 0, 1);
  const end = Date.UTC(year + 1, 0, 1);
  const startOffset = probeOffset(zone, start);
  const at: number[] = [];
  const offsets: number[] = [];
  let prevT = start;
  let prevOffset = startOffset;
  for (let t = start + DAY_MS; ; t += DAY_MS) {
    const probe = Math.min(t, end);
    const offset = probeOffset(zone, probe);
    if (offset !== prevOffset) {
      // Bisect to the second: offsets change on whole seconds (LMT-era ones included).
      let lo = prevT;
      let hi = probe;
      while (hi - lo > 1000) {
        const mid = Math.floor((lo + hi) / 2000) * 1000;
        if (mid <= lo) break;
        if (probeOffset(zone, mid) === prevOffset) lo = mid;
        else hi = mid;
      }
      if (hi < end) {
        at.push(hi);
        offsets.push(offset);
      }
      prevOffset = offset;
    }
    prevT = probe;
    if (probe >= end) break;
  }
  return { start, end, startOffset, at, offsets };
}

function yearTable(zone: Zone, t: number): YearTable {
  const last = zone.last;
  if (last !== null && t >= last.start && t < last.end) return last;
  const year = new Date(t).getUTCFullYear();
  let table = zone.years.get(year);
  if (table === undefined) {
    table = buildYear(zone, year);
    zone.years.set(year, table);
  }
  zone.last = table;
  return table;
}

/** Offset (wall time minus UTC, ms) in force at instant `t`. */
export function offsetAt(zone: Zone, t: number): number {
  const table = yearTable(zone, t);
  let offset = table.startOffset;
  const at = table.at;
  for (let i = 0; i < at.length && (at[i] as number) <= t; i++) offset = table.offsets[i] as number;
  return offset;
}

/**
 * The offset at `t` and where it stops applying: the next transition, or the end of the
 * UTC year (a harmless extra boundary — the next segment simply carries the same offset).
 */
export function segmentAt(zone: Zone, t: number, out: OffsetSegment): OffsetSegment {
  const table = yearTable(zone, t);
  let offset = table.startOffset;
  let end = table.end;
  const at = table.at;
  for (let i = 0; i < at.length; i++) {
    const when = at[i] as number;
    if (when <= t) offset = table.offsets[i] as number;
    else {
      end = when;
      break;
    }
  }
  out.offset = offset;
  out.end = end;
  return out;
}

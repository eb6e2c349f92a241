/**
 * The tenant-local calendar day, used to reset daily counters at the tenant's midnight.
 * A fixed UTC offset would be wrong on DST days (and in zones where DST starts at
 * midnight, such as America/Santiago, local midnight does not exist at all), so the day
 * is read from the zone's rules via Intl rather than computed by offset arithmetic.
 */

// Building an Intl.DateTimeFormat costs far more than formatting with one; a routing pass
// formats once, but tests and benches call this in loops.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    // Throws RangeError for an unknown zone: a bad tenant setting must not silently route in UTC.
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      calendar: "iso8601",
      numberingSystem: "latn",
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** "YYYY-MM-DD" of `now` in `timeZone`. */
export function tenantLocalDate(now: Date, timeZone: string): string {
  let year = "";
  let month = "";
  let day = "";
  for (const part of formatterFor(timeZone).formatToParts(now)) {
    if (part.type === "year") year = part.value;
    else if (part.type === "month") month = part.value;
    else if (part.type === "day") day = part.value;
  }
  return `${year.padStart(4, "0")}-${month}-${day}`;
}

/** The stored counter's value today: a counter last written on another day counts as 0. */
export function countToday(count: number, countDate: string | null, today: string): number {
  return countDate === today ? count : 0;
}

/** The counter row after one more delivery today (what the service writes back). */
export function incrementDailyCount(
  count: number,
  countDate: string | null,
  today: string,
): { dailyCount: number; dailyCountDate: string } {
  return { dailyCount: countToday(count, countDate, today) + 1, dailyCountDate: today };
}

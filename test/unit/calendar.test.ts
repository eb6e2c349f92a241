import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BusinessCalendar, IsoWeekday, OpeningInterval } from "../../src/engine/domain.js";
import {
  addBusinessMinutes,
  addBusinessMinutesMany,
  businessMinutesBetween,
  CalendarNeverOpenError,
  ICAL_MAX_EVENT_DAYS,
  ICAL_MAX_EVENTS,
  InvalidCalendarError,
  isOpen,
  localDate,
  nextClosing,
  nextOpening,
  nextWorkingDate,
  parseIcalHolidays,
  validateCalendar,
} from "../../src/engine/time/calendar.js";

const MIN = 60_000;
const d = (iso: string) => new Date(iso);
const iso = (x: Date | null) => (x === null ? null : x.toISOString());

function weekdays(days: IsoWeekday[], start: string, end: string): OpeningInterval[] {
  return days.map((weekday) => ({ weekday, start, end }));
}
const MON_FRI: IsoWeekday[] = [1, 2, 3, 4, 5];
const ALL_DAYS: IsoWeekday[] = [1, 2, 3, 4, 5, 6, 7];

const berlin: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: weekdays(MON_FRI, "08:00", "17:00"),
  holidays: [
    { date: "2026-05-01", name: "Tag der Arbeit" },
    { date: "2026-12-25", name: "1. Weihnachtstag" },
    { date: "2026-12-26", name: "2. Weihnachtstag" },
  ],
};
const newYork: BusinessCalendar = {
  timeZone: "America/New_York",
  intervals: weekdays(MON_FRI, "09:00", "17:00"),
  holidays: [{ date: "2026-07-03", name: "Independence Day (observed)" }],
};
// Split shift with a lunch break, plus a Friday night shift running into Saturday.
const split: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: [
    ...weekdays(MON_FRI, "08:00", "12:00"),
    ...weekdays(MON_FRI, "13:00", "17:00"),
    { weekday: 5, start: "22:00", end: "02:00" },
  ],
  holidays: [{ date: "2026-06-06", name: "Saturday holiday" }],
};
// Sunday evening into Monday morning: the weekday wraps from 7 to 1.
const sundayNight: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: [{ weekday: 7, start: "20:00", end: "04:00" }],
  holidays: [],
};
const allWeek: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: weekdays(ALL_DAYS, "00:00", "24:00"),
  holidays: [],
};
const never: BusinessCalendar = { timeZone: "Europe/Berlin", intervals: [], holidays: [] };

describe("isOpen", () => {
  it.each([
    // Berlin is UTC+1 in winter, UTC+2 from 2026-03-29 to 2026-10-25.
    ["Mon 08:00 CET opens", berlin, "2026-01-05T07:00:00Z", true],
    ["Mon 07:59 CET", berlin, "2026-01-05T06:59:00Z", false],
    ["Mon 16:59 CET", berlin, "2026-01-05T15:59:00Z", true],
    ["Mon 17:00 CET closes (end exclusive)", berlin, "2026-01-05T16:00:00Z", false],
    ["Mon 08:00 CEST", berlin, "2026-03-30T06:00:00Z", true],
    ["Mon 07:30 CEST (08:30 if one forgot DST)", berlin, "2026-03-30T05:30:00Z", false],
    ["Saturday", berlin, "2026-01-10T10:00:00Z", false],
    ["Christmas Day, a Friday", berlin, "2026-12-25T10:00:00Z", false],
    ["Labour Day, a Friday", berlin, "2026-05-01T10:00:00Z", false],
    ["New York Mon 09:00 EST", newYork, "2026-01-05T14:00:00Z", true],
    ["New York Mon 08:59 EST", newYork, "2026-01-05T13:59:00Z", false],
    ["New York Mon 09:00 EDT", newYork, "2026-03-09T13:00:00Z", true],
    ["New York observed holiday", newYork, "2026-07-03T15:00:00Z", false],
    ["split: lunch break", split, "2026-01-05T11:30:00Z", false],
    ["split: afternoon", split, "2026-01-05T12:00:00Z", true],
    ["split: Friday 23:00", split, "2026-01-09T22:00:00Z", true],
    ["split: Saturday 01:59 (night shift tail)", split, "2026-01-10T00:59:00Z", true],
    ["split: Saturday 02:00", split, "2026-01-10T01:00:00Z", false],
    ["split: holiday Saturday masks the tail", split, "2026-06-06T00:30:00Z", false],
    ["split: the Friday evening before the holiday stays open", split, "2026-06-05T21:30:00Z", true],
    ["Sunday 23:00 into Monday", sundayNight, "2026-01-11T22:00:00Z", true],
    ["Monday 03:59 (tail after the week wraps)", sundayNight, "2026-01-12T02:59:00Z", true],
    ["Monday 04:00", sundayNight, "2026-01-12T03:00:00Z", false],
    ["Sunday 19:59", sundayNight, "2026-01-11T18:59:00Z", false],
    ["24/7", allWeek, "2026-03-29T01:30:00Z", true],
    ["never", never, "2026-01-05T10:00:00Z", false],
  ] as const)("%s", (_label, cal, at, expected) => {
    expect(isOpen(cal, d(at))).toBe(expected);
  });
});

describe("DST transitions", () => {
  const sundayAllDay = (timeZone: string): BusinessCalendar => ({
    timeZone,
    intervals: [{ weekday: 7, start: "00:00", end: "24:00" }],
    holidays: [],
  });
  it.each([
    ["Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z", 23 * 60],
    ["Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z", 25 * 60],
    ["Europe/Berlin", "2026-03-21T12:00:00Z", "2026-03-23T12:00:00Z", 24 * 60],
    ["America/New_York", "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z", 23 * 60],
    ["America/New_York", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z", 25 * 60],
  ])("a whole Sunday in %s between %s and %s lasts %d minutes", (zone, a, b, minutes) => {
    expect(businessMinutesBetween(sundayAllDay(zone), d(a), d(b))).toBe(minutes);
  });

  const sunday = (start: string, end: string): BusinessCalendar => ({
    timeZone: "Europe/Berlin",
    intervals: [{ weekday: 7, start, end }],
    holidays: [],
  });

  it("spring forward: 01:00–03:00 is one real hour, an interval inside the gap none", () => {
    const spanning = sunday("01:00", "03:00");
    expect(businessMinutesBetween(spanning, d("2026-03-28T00:00:00Z"), d("2026-03-30T00:00:00Z"))).toBe(60);
    expect(iso(nextOpening(spanning, d("2026-03-28T12:00:00Z")))).toBe("2026-03-29T00:00:00.000Z");
    expect(iso(nextClosing(spanning, d("2026-03-29T00:30:00Z")))).toBe("2026-03-29T01:00:00.000Z");
    const inGap = sunday("02:00", "03:00");
    expect(businessMinutesBetween(inGap, d("2026-03-28T00:00:00Z"), d("2026-03-30T00:00:00Z"))).toBe(0);
    // The next occurrence is a week later, in CEST.
    expect(iso(nextOpening(inGap, d("2026-03-28T12:00:00Z")))).toBe("2026-04-05T00:00:00.000Z");
  });

  it("spring forward: an interval starting inside the gap opens when the gap ends", () => {
    const cal = sunday("02:30", "04:00");
    expect(iso(nextOpening(cal, d("2026-03-28T12:00:00Z")))).toBe("2026-03-29T01:00:00.000Z");
    expect(isOpen(cal, d("2026-03-29T00:59:00Z"))).toBe(false);
    expect(isOpen(cal, d("2026-03-29T01:00:00Z"))).toBe(true);
    expect(businessMinutesBetween(cal, d("2026-03-29T00:00:00Z"), d("2026-03-29T03:00:00Z"))).toBe(60);
    expect(iso(addBusinessMinutes(cal, d("2026-03-28T12:00:00Z"), 60))).toBe("2026-03-29T02:00:00.000Z");
  });

  it("fall back: the repeated hour is open both times its wall time is inside the interval", () => {
    // 02:30–04:00 on 2026-10-25: 02:30–03:00 CEST (00:30–01:00Z), the clock returns to
    // 02:00 CET, closed until 02:30 CET (01:30Z), then open to 04:00 CET (03:00Z).
    const cal = sunday("02:30", "04:00");
    expect(businessMinutesBetween(cal, d("2026-10-24T12:00:00Z"), d("2026-10-26T00:00:00Z"))).toBe(120);
    expect(isOpen(cal, d("2026-10-25T00:45:00Z"))).toBe(true);
    expect(isOpen(cal, d("2026-10-25T01:15:00Z"))).toBe(false);
    expect(isOpen(cal, d("2026-10-25T01:30:00Z"))).toBe(true);
    expect(iso(nextClosing(cal, d("2026-10-25T00:40:00Z")))).toBe("2026-10-25T01:00:00.000Z");
    expect(iso(nextOpening(cal, d("2026-10-25T01:10:00Z")))).toBe("2026-10-25T01:30:00.000Z");
    expect(iso(addBusinessMinutes(cal, d("2026-10-25T00:30:00Z"), 31))).toBe("2026-10-25T01:31:00.000Z");
  });

  it("a night shift across the fall-back night lasts one hour longer", () => {
    const cal: BusinessCalendar = {
      timeZone: "Europe/Berlin",
      intervals: [{ weekday: 6, start: "22:00", end: "06:00" }],
      holidays: [],
    };
    // Saturday 22:00 CEST (20:00Z) to Sunday 06:00 CET (05:00Z) = 9 real hours.
    expect(iso(nextClosing(cal, d("2026-10-24T20:00:00Z")))).toBe("2026-10-25T05:00:00.000Z");
    expect(businessMinutesBetween(cal, d("2026-10-24T00:00:00Z"), d("2026-10-26T00:00:00Z"))).toBe(9 * 60);
    expect(iso(addBusinessMinutes(cal, d("2026-10-24T20:00:00Z"), 9 * 60))).toBe("2026-10-25T05:00:00.000Z");
  });

  it("New York business day after the spring-forward weekend starts at 13:00Z, not 14:00Z", () => {
    expect(iso(nextOpening(newYork, d("2026-03-07T12:00:00Z")))).toBe("2026-03-09T13:00:00.000Z");
    expect(iso(nextOpening(newYork, d("2026-10-31T12:00:00Z")))).toBe("2026-11-02T14:00:00.000Z");
  });
});

describe("nextOpening / nextClosing", () => {
  it.each([
    ["open now returns at itself", berlin, "2026-01-05T10:00:00Z", "2026-01-05T10:00:00.000Z"],
    ["before opening", berlin, "2026-01-05T06:00:00Z", "2026-01-05T07:00:00.000Z"],
    ["Friday evening to Monday", berlin, "2026-01-09T17:00:00Z", "2026-01-12T07:00:00.000Z"],
    ["over Christmas (Fri 25, Sat, Sun)", berlin, "2026-12-24T16:30:00Z", "2026-12-28T07:00:00.000Z"],
    ["lunch break", split, "2026-01-05T11:10:00Z", "2026-01-05T12:00:00.000Z"],
    ["Friday evening before the night shift", split, "2026-01-09T17:00:00Z", "2026-01-09T21:00:00.000Z"],
    ["Sunday before the Sunday night shift", sundayNight, "2026-01-11T10:00:00Z", "2026-01-11T19:00:00.000Z"],
    ["never", never, "2026-01-05T10:00:00Z", null],
  ] as const)("nextOpening: %s", (_label, cal, at, expected) => {
    expect(iso(nextOpening(cal, d(at)))).toBe(expected);
  });

  it.each([
    ["open: end of today's interval", berlin, "2026-01-05T10:00:00Z", "2026-01-05T16:00:00.000Z"],
    ["closed: end of the next period", berlin, "2026-01-09T18:00:00Z", "2026-01-12T16:00:00.000Z"],
    ["night shift closes after midnight", split, "2026-01-09T22:00:00Z", "2026-01-10T01:00:00.000Z"],
    [
      "Sunday night shift closes Monday 04:00",
      sundayNight,
      "2026-01-11T20:00:00Z",
      "2026-01-12T03:00:00.000Z",
    ],
    ["24/7 never closes", allWeek, "2026-01-05T10:00:00Z", null],
    ["never", never, "2026-01-05T10:00:00Z", null],
  ] as const)("nextClosing: %s", (_label, cal, at, expected) => {
    expect(iso(nextClosing(cal, d(at)))).toBe(expected);
  });

  it("a 24/7 calendar closes at the start of its next holiday", () => {
    const cal: BusinessCalendar = { ...allWeek, holidays: [{ date: "2026-12-25", name: "Christmas" }] };
    expect(iso(nextClosing(cal, d("2026-12-20T10:00:00Z")))).toBe("2026-12-24T23:00:00.000Z");
    expect(iso(nextOpening(cal, d("2026-12-25T10:00:00Z")))).toBe("2026-12-25T23:00:00.000Z");
  });

  it("back-to-back intervals count as one open period", () => {
    const cal: BusinessCalendar = {
      timeZone: "UTC",
      intervals: [
        { weekday: 1, start: "08:00", end: "12:00" },
        { weekday: 1, start: "12:00", end: "16:00" },
        { weekday: 1, start: "10:00", end: "11:00" },
      ],
      holidays: [],
    };
    expect(iso(nextClosing(cal, d("2026-01-05T09:00:00Z")))).toBe("2026-01-05T16:00:00.000Z");
    expect(businessMinutesBetween(cal, d("2026-01-05T00:00:00Z"), d("2026-01-06T00:00:00Z"))).toBe(8 * 60);
  });
});

describe("addBusinessMinutes / businessMinutesBetween", () => {
  it.each([
    ["inside one day", berlin, "2026-01-05T08:00:00Z", 60, "2026-01-05T09:00:00.000Z"],
    [
      "ends exactly at Friday's closing, not Monday",
      berlin,
      "2026-01-09T15:00:00Z",
      60,
      "2026-01-09T16:00:00.000Z",
    ],
    ["one more minute rolls to Monday 08:01", berlin, "2026-01-09T15:00:00Z", 61, "2026-01-12T07:01:00.000Z"],
    [
      "from a closed time starts at the next opening",
      berlin,
      "2026-01-10T10:00:00Z",
      30,
      "2026-01-12T07:30:00.000Z",
    ],
    ["4 h over a DST weekend", berlin, "2026-03-27T14:00:00Z", 240, "2026-03-30T08:00:00.000Z"],
    [
      "3 business days (1,620 min) from Wednesday 10:00",
      berlin,
      "2026-01-07T09:00:00Z",
      1620,
      "2026-01-12T09:00:00.000Z",
    ],
    ["skips Christmas", berlin, "2026-12-24T15:00:00Z", 120, "2026-12-28T08:00:00.000Z"],
    ["across lunch", split, "2026-01-05T10:30:00Z", 120, "2026-01-05T13:30:00.000Z"],
    ["into the night shift", split, "2026-01-09T15:30:00Z", 60, "2026-01-09T21:30:00.000Z"],
    [
      "exactly one business week ends Friday 17:00",
      berlin,
      "2026-01-04T23:00:00Z",
      45 * 60,
      "2026-01-09T16:00:00.000Z",
    ],
    ["a week and a minute", berlin, "2026-01-04T23:00:00Z", 45 * 60 + 1, "2026-01-12T07:01:00.000Z"],
    [
      "zero minutes returns from, even when closed",
      berlin,
      "2026-01-10T10:00:00Z",
      0,
      "2026-01-10T10:00:00.000Z",
    ],
    ["fractions round to the millisecond", berlin, "2026-01-05T08:00:00Z", 0.5, "2026-01-05T08:00:30.000Z"],
    ["24/7 is plain arithmetic", allWeek, "2026-03-28T22:00:00Z", 600, "2026-03-29T08:00:00.000Z"],
  ] as const)("%s", (_label, cal, from, minutes, expected) => {
    expect(iso(addBusinessMinutes(cal, d(from), minutes))).toBe(expected);
  });

  it("long targets skip whole weeks and still land on the right minute", () => {
    // 100 business weeks of 45 h, from Monday 2026-01-05 08:00 CET; holidays add days.
    const from = d("2026-01-05T07:00:00Z");
    const result = addBusinessMinutes(berlin, from, 100 * 45 * 60);
    expect(businessMinutesBetween(berlin, from, result)).toBe(100 * 45 * 60);
    expect(isOpen(berlin, new Date(result.getTime() - 1))).toBe(true);
  });

  it("addBusinessMinutesMany matches single calls, in input order", () => {
    const from = d("2026-01-07T09:17:00Z");
    const amounts = [1620, 0, 240, 192, 1296, 240];
    expect(addBusinessMinutesMany(berlin, from, amounts).map(iso)).toEqual(
      amounts.map((m) => iso(addBusinessMinutes(berlin, from, m))),
    );
  });

  it("rejects negative and non-finite minutes and invalid dates", () => {
    expect(() => addBusinessMinutes(berlin, d("2026-01-05T08:00:00Z"), -1)).toThrow(RangeError);
    expect(() => addBusinessMinutes(berlin, d("2026-01-05T08:00:00Z"), Number.NaN)).toThrow(RangeError);
    expect(() => addBusinessMinutes(berlin, new Date(Number.NaN), 5)).toThrow(RangeError);
  });

  it("a never-open calendar throws a clear error for sums and returns 0 for differences", () => {
    expect(() => addBusinessMinutes(never, d("2026-01-05T08:00:00Z"), 5)).toThrow(CalendarNeverOpenError);
    expect(() => addBusinessMinutes(never, d("2026-01-05T08:00:00Z"), 5)).toThrow(/never opens/);
    expect(businessMinutesBetween(never, d("2026-01-01T00:00:00Z"), d("2027-01-01T00:00:00Z"))).toBe(0);
  });

  it.each([
    ["b before a", berlin, "2026-01-06T10:00:00Z", "2026-01-05T10:00:00Z", 0],
    ["a full week", berlin, "2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z", 45 * 60],
    ["the Christmas week", berlin, "2026-12-21T00:00:00Z", "2026-12-28T00:00:00Z", 4 * 9 * 60],
    [
      "a year of weekdays minus the 2 holidays on weekdays",
      berlin,
      "2026-01-01T00:00:00Z",
      "2027-01-01T00:00:00Z",
      (261 - 2) * 540,
    ],
    ["part of an interval, seconds count", berlin, "2026-01-05T07:00:30Z", "2026-01-05T07:01:00Z", 0.5],
  ] as const)("between: %s", (_label, cal, a, b, expected) => {
    expect(businessMinutesBetween(cal, d(a), d(b))).toBe(expected);
  });

  it("an invalid calendar is rejected with every problem", () => {
    const bad = {
      timeZone: "Mars/Olympus",
      intervals: [{ weekday: 1, start: "8:00", end: "17:00" }],
      holidays: [],
    };
    try {
      isOpen(bad as unknown as BusinessCalendar, d("2026-01-05T08:00:00Z"));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidCalendarError);
      expect((e as InvalidCalendarError).problems.map((p) => p.field)).toEqual([
        "timeZone",
        "intervals[0].start",
      ]);
    }
  });
});

describe("nextWorkingDate / localDate", () => {
  it.each([
    ["Thursday → Friday", berlin, "2026-01-08T12:00:00Z", "2026-01-09"],
    ["Friday → Monday", berlin, "2026-01-09T12:00:00Z", "2026-01-12"],
    ["Christmas Eve → Monday after both holidays", berlin, "2026-12-24T12:00:00Z", "2026-12-28"],
    ["late Thursday UTC is already Friday in Berlin", berlin, "2026-01-08T23:30:00Z", "2026-01-12"],
    [
      "the night-shift tail does not make Saturday a working date",
      split,
      "2026-01-09T12:00:00Z",
      "2026-01-12",
    ],
    ["Saturday night → the Sunday the shift starts", sundayNight, "2026-01-10T12:00:00Z", "2026-01-11"],
  ] as const)("%s", (_label, cal, at, expected) => {
    expect(nextWorkingDate(cal, d(at))).toBe(expected);
  });

  it("throws for a calendar that never opens", () => {
    expect(() => nextWorkingDate(never, d("2026-01-05T08:00:00Z"))).toThrow(CalendarNeverOpenError);
  });

  it("localDate uses the calendar's zone", () => {
    expect(localDate(berlin, d("2026-01-09T23:30:00Z"))).toBe("2026-01-10");
    expect(localDate(newYork, d("2026-01-10T03:30:00Z"))).toBe("2026-01-09");
  });
});

describe("validateCalendar", () => {
  const ok = { timeZone: "Europe/Berlin", intervals: weekdays(MON_FRI, "08:00", "17:00"), holidays: [] };
  it("accepts a valid calendar, 24:00 as an end and midnight-spanning intervals", () => {
    expect(validateCalendar(ok)).toEqual([]);
    expect(
      validateCalendar({
        ...ok,
        intervals: [
          { weekday: 7, start: "00:00", end: "24:00" },
          { weekday: 5, start: "22:00", end: "02:00" },
        ],
      }),
    ).toEqual([]);
  });

  it.each([
    ["unknown zone", { ...ok, timeZone: "Europe/Atlantis" }, ["timeZone"]],
    ["empty zone", { ...ok, timeZone: "" }, ["timeZone"]],
    [
      "weekday 0",
      { ...ok, intervals: [{ weekday: 0, start: "08:00", end: "09:00" }] },
      ["intervals[0].weekday"],
    ],
    [
      "weekday 8",
      { ...ok, intervals: [{ weekday: 8, start: "08:00", end: "09:00" }] },
      ["intervals[0].weekday"],
    ],
    [
      "weekday 1.5",
      { ...ok, intervals: [{ weekday: 1.5, start: "08:00", end: "09:00" }] },
      ["intervals[0].weekday"],
    ],
    ["H:MM", { ...ok, intervals: [{ weekday: 1, start: "8:00", end: "09:00" }] }, ["intervals[0].start"]],
    [
      "24:00 as a start",
      { ...ok, intervals: [{ weekday: 1, start: "24:00", end: "09:00" }] },
      ["intervals[0].start"],
    ],
    ["minute 60", { ...ok, intervals: [{ weekday: 1, start: "08:00", end: "09:60" }] }, ["intervals[0].end"]],
    ["25:00", { ...ok, intervals: [{ weekday: 1, start: "08:00", end: "25:00" }] }, ["intervals[0].end"]],
    [
      "several problems in one interval list",
      {
        ...ok,
        intervals: [
          { weekday: 1, start: "08:00", end: "09:00" },
          { weekday: 1, start: "x", end: "09:00" },
          { weekday: 9, start: "08:00", end: "9" },
        ],
      },
      ["intervals[1].start", "intervals[2].weekday", "intervals[2].end"],
    ],
    [
      "51 intervals",
      { ...ok, intervals: Array.from({ length: 51 }, () => ({ weekday: 1, start: "08:00", end: "09:00" })) },
      ["intervals"],
    ],
    ["bad date format", { ...ok, holidays: [{ date: "25.12.2026", name: "X" }] }, ["holidays[0].date"]],
    ["impossible date", { ...ok, holidays: [{ date: "2026-02-30", name: "X" }] }, ["holidays[0].date"]],
    [
      "duplicate date",
      {
        ...ok,
        holidays: [
          { date: "2026-12-25", name: "X" },
          { date: "2026-12-25", name: "Y" },
        ],
      },
      ["holidays[1].date"],
    ],
    ["empty name", { ...ok, holidays: [{ date: "2026-12-25", name: " " }] }, ["holidays[0].name"]],
    ["long name", { ...ok, holidays: [{ date: "2026-12-25", name: "x".repeat(101) }] }, ["holidays[0].name"]],
    [
      "201 holidays",
      {
        ...ok,
        holidays: Array.from({ length: 201 }, (_, i) => ({
          date: new Date(Date.UTC(2026, 0, 1 + i)).toISOString().slice(0, 10),
          name: "H",
        })),
      },
      ["holidays"],
    ],
  ])("%s", (_label, input, fields) => {
    expect(validateCalendar(input).map((p) => p.field)).toEqual(fields);
  });
});

describe("parseIcalHolidays", () => {
  const ics = [
    "BEGIN:VCALENDAR",
    "VERSION:2.0",
    "BEGIN:VEVENT",
    "DTSTART;VALUE=DATE:20261225",
    "DTEND;VALUE=DATE:20261227",
    "SUMMARY:Weihnachten\\, beide Tage",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "DTSTART:20260501T000000",
    "SUMMARY:Tag der",
    "  Arbeit",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "DTSTART;TZID=Europe/Berlin:20261003T090000",
    "DTEND;TZID=Europe/Berlin:20261003T170000",
    "SUMMARY:Tag der Deutschen Einheit",
    "BEGIN:VALARM",
    "DTSTART:20200101",
    "END:VALARM",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "DTSTART;VALUE=DATE:20261231",
    "DURATION:P2D",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "DTSTART;VALUE=DATE:20261332",
    "SUMMARY:Malformed date",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "SUMMARY:No start",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "DTSTART;VALUE=DATE:20260101",
    "STATUS:CANCELLED",
    "SUMMARY:Cancelled",
    "END:VEVENT",
    "END:VCALENDAR",
  ].join("\r\n");

  it("reads dates, multi-day spans, folded summaries and durations; skips bad events", () => {
    expect(parseIcalHolidays(ics)).toEqual([
      { date: "2026-05-01", name: "Tag der Arbeit" },
      { date: "2026-10-03", name: "Tag der Deutschen Einheit" },
      { date: "2026-12-25", name: "Weihnachten, beide Tage" },
      { date: "2026-12-26", name: "Weihnachten, beide Tage" },
      { date: "2026-12-31", name: "Holiday" },
      { date: "2027-01-01", name: "Holiday" },
    ]);
  });

  it("drops an event cut off without END and keeps the next one", () => {
    const cut =
      "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260102\nEND:VEVENT";
    expect(parseIcalHolidays(cut)).toEqual([{ date: "2026-01-02", name: "Holiday" }]);
  });

  it(`skips an event longer than ${ICAL_MAX_EVENT_DAYS} days (a runaway DTEND is not a holiday)`, () => {
    const far = "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nDTEND;VALUE=DATE:99991231\nEND:VEVENT";
    expect(parseIcalHolidays(far)).toEqual([]);
    const month = "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nDTEND;VALUE=DATE:20260201\nEND:VEVENT";
    expect(parseIcalHolidays(month)).toHaveLength(31);
  });

  it(`reads at most ${ICAL_MAX_EVENTS} events`, () => {
    const events = Array.from({ length: ICAL_MAX_EVENTS + 10 }, (_, i) => {
      const date = new Date(Date.UTC(2000, 0, 1 + i)).toISOString().slice(0, 10).replaceAll("-", "");
      return `BEGIN:VEVENT\nDTSTART;VALUE=DATE:${date}\nEND:VEVENT`;
    });
    expect(parseIcalHolidays(events.join("\n"))).toHaveLength(ICAL_MAX_EVENTS);
  });

  it("never throws on garbage", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        expect(Array.isArray(parseIcalHolidays(`BEGIN:VEVENT\n${s}\nEND:VEVENT\n${s}`))).toBe(true);
      }),
      { numRuns: 300 },
    );
    expect(parseIcalHolidays("")).toEqual([]);
    expect(parseIcalHolidays("\u0000\u0001:;;::BEGIN:VEVENT")).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// Properties. Instants are minute-aligned in 2025–2028, plus a generator that stays close
// to the 2026 DST transitions where the bugs would be.

const calendars: [string, BusinessCalendar][] = [
  ["berlin", berlin],
  ["new-york", newYork],
  ["split", split],
  ["sunday-night", sundayNight],
];

const anyInstant = fc
  .integer({ min: Date.UTC(2025, 0, 1) / MIN, max: Date.UTC(2028, 11, 31) / MIN })
  .map((m) => new Date(m * MIN));
const nearDst = fc
  .constantFrom(
    "2026-03-29T01:00:00Z",
    "2026-10-25T01:00:00Z",
    "2026-03-08T07:00:00Z",
    "2026-11-01T06:00:00Z",
  )
  .chain((t) =>
    fc.integer({ min: -3 * 24 * 60, max: 3 * 24 * 60 }).map((m) => new Date(d(t).getTime() + m * MIN)),
  );
const instant = fc.oneof(anyInstant, nearDst);

const formats = new Map<string, Intl.DateTimeFormat>();
/** Independent oracle: local wall time from Intl directly, then the spec's definition. */
function oracleOpen(cal: BusinessCalendar, at: Date): boolean {
  let format = formats.get(cal.timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: cal.timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
    });
    formats.set(cal.timeZone, format);
  }
  const parts = format.formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  const date = `${get("year")}-${get("month")}-${get("day")}`;
  if (cal.holidays.some((h) => h.date === date)) return false;
  const weekday = ((new Date(`${date}T00:00:00Z`).getUTCDay() + 6) % 7) + 1;
  const previous = weekday === 1 ? 7 : weekday - 1;
  const minute = Number(get("hour")) * 60 + Number(get("minute"));
  const toMin = (s: string) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3));
  return cal.intervals.some((iv) => {
    const s = toMin(iv.start);
    const e = toMin(iv.end);
    if (e > s) return iv.weekday === weekday && minute >= s && minute < e;
    return (iv.weekday === weekday && minute >= s) || (iv.weekday === previous && minute < e);
  });
}

describe.each(calendars)("properties: %s", (_name, cal) => {
  it("isOpen agrees with an Intl-based oracle", () => {
    fc.assert(
      fc.property(instant, (at) => {
        expect(isOpen(cal, at)).toBe(oracleOpen(cal, at));
      }),
      { numRuns: 150 },
    );
  });

  it("businessMinutesBetween(a, addBusinessMinutes(a, m)) === m", () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: 1, max: 10_000 }), (a, m) => {
        expect(businessMinutesBetween(cal, a, addBusinessMinutes(cal, a, m))).toBe(m);
      }),
      { numRuns: 150 },
    );
  });

  it("the result is open or the end of an open period, and never earlier than needed", () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: 1, max: 5_000 }), (a, m) => {
        const r = addBusinessMinutes(cal, a, m);
        expect(isOpen(cal, r) || isOpen(cal, new Date(r.getTime() - 1))).toBe(true);
        expect(businessMinutesBetween(cal, a, new Date(r.getTime() - MIN))).toBeLessThan(m);
      }),
      { numRuns: 150 },
    );
  });

  it("is monotonic in m and additive", () => {
    fc.assert(
      fc.property(
        instant,
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 0, max: 3_000 }),
        (a, m1, m2) => {
          const r1 = addBusinessMinutes(cal, a, m1);
          const r12 = addBusinessMinutes(cal, a, m1 + m2);
          expect(r12.getTime()).toBeGreaterThanOrEqual(r1.getTime());
          if (m1 > 0 && m2 > 0) expect(addBusinessMinutes(cal, r1, m2).getTime()).toBe(r12.getTime());
        },
      ),
      { numRuns: 150 },
    );
  });

  // isOpen is checked against Intl above; counting with it keeps this test fast.
  it("businessMinutesBetween matches counting open minutes one by one", () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: 0, max: 3 * 24 * 60 }), (a, span) => {
        let count = 0;
        for (let i = 0; i < span; i++) if (isOpen(cal, new Date(a.getTime() + i * MIN))) count++;
        expect(businessMinutesBetween(cal, a, new Date(a.getTime() + span * MIN))).toBe(count);
      }),
      { numRuns: 30 },
    );
  });

  it("nextOpening is open with nothing open before it; nextClosing follows it", () => {
    fc.assert(
      fc.property(instant, (a) => {
        const open = nextOpening(cal, a);
        expect(open).not.toBeNull();
        if (open === null) return;
        expect(isOpen(cal, open)).toBe(true);
        expect(businessMinutesBetween(cal, a, open)).toBe(0);
        const close = nextClosing(cal, a);
        expect(close).not.toBeNull();
        if (close === null) return;
        expect(close.getTime()).toBeGreaterThan(open.getTime());
        expect(isOpen(cal, close)).toBe(false);
        expect(isOpen(cal, new Date(close.getTime() - 1))).toBe(true);
        expect(businessMinutesBetween(cal, open, close)).toBe((close.getTime() - open.getTime()) / MIN);
      }),
      { numRuns: 150 },
    );
  });
});

describe("far-away holidays", () => {
  it("a 24/7 calendar with one holiday decades ahead answers quickly", () => {
    const cal: BusinessCalendar = { ...allWeek, holidays: [{ date: "2090-06-01", name: "Far away" }] };
    const t0 = performance.now();
    expect(iso(nextClosing(cal, d("2026-01-05T10:00:00Z")))).toBe("2090-05-31T22:00:00.000Z");
    expect(nextClosing(cal, d("2090-06-02T10:00:00Z"))).toBeNull();
    expect(performance.now() - t0).toBeLessThan(500);
  });
});

import { describe, expect, it } from "vitest";
import { type Calendar, type CalendarInput, calendarProblems } from "../../src/engine/config/calendars.js";
import { dayNumber } from "../../src/engine/time/calendar.js";

// The config API validates with the time module's validateCalendar (one definition for
// what the business-hours math accepts); these cases check it through the API's entry
// point, as an update of a stored calendar (so only the fields sent are checked).
const stored = { name: "Desk", timeZone: "UTC", intervals: [], holidays: [] } as unknown as Calendar;

function problems(input: CalendarInput) {
  return calendarProblems(input, stored);
}

const isIsoDate = (d: string) => dayNumber(d) !== null;

const iv = (weekday: number, start: string, end: string) => ({ weekday, start, end });

describe("calendarProblems (validateCalendar behind the config API)", () => {
  it("accepts split days, midnight-spanning intervals and 24:00", () => {
    expect(
      problems({
        name: "Support",
        timeZone: "Europe/Berlin",
        intervals: [
          iv(1, "08:00", "12:00"),
          iv(1, "13:00", "17:30"),
          iv(5, "22:00", "06:00"),
          iv(7, "00:00", "24:00"),
        ],
        holidays: [{ date: "2028-02-29", name: "Leap day" }],
      }),
    ).toEqual([]);
  });

  it("requires name and time zone when creating", () => {
    expect(calendarProblems({}).map((p) => p.field)).toEqual(["name", "timeZone"]);
  });

  it.each([
    [{ timeZone: "Mars/Olympus" }, "timeZone"],
    [{ timeZone: "" }, "timeZone"],
    [{ name: "" }, "name"],
    [{ name: "x".repeat(101) }, "name"],
    [{ intervals: [iv(0, "09:00", "17:00")] }, "intervals[0].weekday"],
    [{ intervals: [iv(8, "09:00", "17:00")] }, "intervals[0].weekday"],
    [{ intervals: [iv(1.5, "09:00", "17:00")] }, "intervals[0].weekday"],
    [{ intervals: [iv(1, "09:00", "17:00"), iv(2, "25:00", "17:00")] }, "intervals[1].start"],
    [{ intervals: [iv(1, "9:00", "17:00")] }, "intervals[0].start"],
    [{ intervals: [iv(1, "24:00", "17:00")] }, "intervals[0].start"],
    [{ intervals: [iv(1, "09:60", "17:00")] }, "intervals[0].start"],
    [{ intervals: [iv(1, "09:00", "24:01")] }, "intervals[0].end"],
    [{ intervals: [iv(1, "09:00", "5pm")] }, "intervals[0].end"],
    [{ intervals: Array.from({ length: 51 }, () => iv(1, "09:00", "10:00")) }, "intervals"],
    [{ holidays: [{ date: "2026-02-30", name: "x" }] }, "holidays[0].date"],
    [{ holidays: [{ date: "2026-13-01", name: "x" }] }, "holidays[0].date"],
    [{ holidays: [{ date: "26-01-01", name: "x" }] }, "holidays[0].date"],
    [
      {
        holidays: [
          { date: "2026-01-01", name: "a" },
          { date: "2026-01-01", name: "b" },
        ],
      },
      "holidays[1].date",
    ],
    [{ holidays: [{ date: "2026-01-01", name: "x".repeat(101) }] }, "holidays[0].name"],
    [
      {
        holidays: Array.from({ length: 201 }, (_v, i) => ({
          date: `20${String(i % 100).padStart(2, "0")}-01-01`,
          name: "",
        })),
      },
      "holidays",
    ],
  ])("rejects %j at %s", (input, field) => {
    expect(problems(input).map((p) => p.field)).toContain(field);
  });

  it("checks only real calendar dates", () => {
    expect(isIsoDate("2024-02-29")).toBe(true);
    expect(isIsoDate("2025-02-29")).toBe(false);
    expect(isIsoDate("2025-04-31")).toBe(false);
    expect(isIsoDate("2025-4-30")).toBe(false);
  });
});

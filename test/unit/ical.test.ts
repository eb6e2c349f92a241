import { describe, expect, it } from "vitest";
import { parseIcalFeed as parseIcalHolidays } from "../../src/engine/time/calendar.js";

// The import report of the one iCalendar reader (engine/time/calendar.ts): holidays plus
// the count of events it could not use.

/** Shaped like a public-holiday export (Google/Outlook): CRLF, folded lines, a VALARM, noise. */
const FEED = [
  "BEGIN:VCALENDAR",
  "VERSION:2.0",
  "PRODID:-//Example//Holidays//EN",
  "X-WR-CALNAME:Feiertage",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20260101",
  "DTEND;VALUE=DATE:20260102",
  "SUMMARY:Neujahr",
  "UID:1@example",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20260403",
  "SUMMARY:Karfreitag\\, bundes",
  " weit",
  "BEGIN:VALARM",
  "TRIGGER:-PT15M",
  "DTSTART:19700101T000000",
  "SUMMARY:alarm",
  "END:VALARM",
  "END:VEVENT",
  "this line is garbage",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20261224",
  "DTEND;VALUE=DATE:20261227",
  "SUMMARY:Weihnachten",
  "END:VEVENT",
  "BEGIN:VEVENT",
  'DTSTART;TZID="Europe/Berlin":20260501T000000',
  "DTEND;TZID=Europe/Berlin:20260502T000000",
  "SUMMARY:Tag der Arbeit",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "DTSTART:20261003T080000Z",
  "DTEND:20261003T200000Z",
  "SUMMARY:Tag der Deutschen Einheit",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20260230",
  "SUMMARY:Impossible",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "SUMMARY:No date",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20260101",
  "DTEND;VALUE=DATE:20270101",
  "SUMMARY:Whole year marker",
  "END:VEVENT",
  "END:VCALENDAR",
].join("\r\n");

describe("parseIcalHolidays", () => {
  it("reads a real-world-like feed and counts what it cannot use", () => {
    const r = parseIcalHolidays(FEED);
    expect(r.holidays).toEqual([
      { date: "2026-01-01", name: "Neujahr" },
      { date: "2026-04-03", name: "Karfreitag, bundesweit" },
      { date: "2026-05-01", name: "Tag der Arbeit" },
      { date: "2026-10-03", name: "Tag der Deutschen Einheit" },
      { date: "2026-12-24", name: "Weihnachten" },
      { date: "2026-12-25", name: "Weihnachten" },
      { date: "2026-12-26", name: "Weihnachten" },
    ]);
    // 2026-02-30, the event without DTSTART, and the 365-day event.
    expect(r.skipped).toBe(3);
  });

  it("unfolds continuation lines (RFC 5545 §3.1)", () => {
    const r = parseIcalHolidays(
      "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nSUMMARY:a\r\n b\r\n\tc\r\nEND:VEVENT",
    );
    expect(r.holidays).toEqual([{ date: "2026-01-01", name: "abc" }]);
  });

  it("never throws on garbage", () => {
    for (const junk of [
      "",
      "\u0000\u0001",
      "BEGIN:VEVENT",
      "END:VEVENT\nBEGIN:VEVENT\nDTSTART:x",
      "::::",
      "x".repeat(10_000),
    ]) {
      expect(() => parseIcalHolidays(junk)).not.toThrow();
    }
    expect(parseIcalHolidays("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\n")).toEqual({
      holidays: [],
      skipped: 1,
    });
  });

  it("caps the number of events read", () => {
    const events = Array.from(
      { length: 12 },
      (_v, i) =>
        `BEGIN:VEVENT\nDTSTART;VALUE=DATE:202601${String(i + 1).padStart(2, "0")}\nSUMMARY:d${i}\nEND:VEVENT`,
    ).join("\n");
    const r = parseIcalHolidays(events, 10);
    expect(r.holidays).toHaveLength(10);
    expect(r.skipped).toBe(2);
  });

  it("keeps the first name for a date and defaults an empty summary", () => {
    const r = parseIcalHolidays(
      "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nSUMMARY:A\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nSUMMARY:B\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260102\nEND:VEVENT",
    );
    expect(r.holidays).toEqual([
      { date: "2026-01-01", name: "A" },
      { date: "2026-01-02", name: "Holiday" },
    ]);
  });
});

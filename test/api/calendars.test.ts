import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";

let t: TestApp;
let agentKey: string;
let supervisorKey: string;
let otherKey: string;
beforeAll(async () => {
  t = await startTestApp();
  agentKey = (await createUserWithKey(t.db.db, t.tenantId, "AGENT")).key;
  supervisorKey = (await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR")).key;
  otherKey = (await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" }))
    .apiKey;
});
afterAll(async () => {
  await t?.stop();
});

const CAL_FIELDS = `id name timeZone intervals { weekday start end } holidays { date name } archivedAt`;
const RESULT = (type: string, fields: string) => `__typename
  ... on ${type} { ${fields} }
  ... on ValidationError { field problems { field message } }
  ... on NotFoundError { entity }
  ... on ForbiddenError { message }
  ... on ConflictError { message }`;

const CREATE_CAL = `mutation($input: BusinessCalendarInput!) { createBusinessCalendar(input: $input) { ${RESULT("BusinessCalendar", CAL_FIELDS)} } }`;
const UPDATE_CAL = `mutation($id: ID!, $input: BusinessCalendarInput!) { updateBusinessCalendar(id: $id, input: $input) { ${RESULT("BusinessCalendar", CAL_FIELDS)} } }`;
const ARCHIVE_CAL = `mutation($id: ID!) { archiveBusinessCalendar(id: $id) { ${RESULT("BusinessCalendar", CAL_FIELDS)} } }`;
const IMPORT = `mutation($id: ID!, $ics: String!, $replace: Boolean) { importCalendarHolidays(calendarId: $id, ics: $ics, replace: $replace) {
  ${RESULT("HolidayImport", `imported skipped calendar { ${CAL_FIELDS} }`)} } }`;

const SLA_FIELDS = `id name warningPercent archivedAt calendar { id name }
  firstResponse { totalMinutes days hours minutes formatted }
  nextResponse { totalMinutes } resolution { totalMinutes formatted }`;
const CREATE_SLA = `mutation($input: SlaPolicyInput!) { createSlaPolicy(input: $input) { ${RESULT("SlaPolicy", SLA_FIELDS)} } }`;
const UPDATE_SLA = `mutation($id: ID!, $input: SlaPolicyInput!) { updateSlaPolicy(id: $id, input: $input) { ${RESULT("SlaPolicy", SLA_FIELDS)} } }`;
const ARCHIVE_SLA = `mutation($id: ID!) { archiveSlaPolicy(id: $id) { ${RESULT("SlaPolicy", SLA_FIELDS)} } }`;
const SET_DEFAULT = `mutation($id: ID) { setDefaultSlaPolicy(id: $id) { ${RESULT("SetDefaultSlaPolicyPayload", "policy { id name }")} } }`;

async function createCalendar(input: Record<string, unknown> = {}, key?: string) {
  const d = await t.ok(
    CREATE_CAL,
    { input: { name: "Support hours", timeZone: "Europe/Berlin", ...input } },
    key,
  );
  expect(d.createBusinessCalendar.__typename).toBe("BusinessCalendar");
  return d.createBusinessCalendar as { id: string; holidays: { date: string; name: string }[] };
}

describe("business-hours calendars", () => {
  it("creates with split and midnight-spanning intervals, updates, lists and archives", async () => {
    const c = await t.ok(CREATE_CAL, {
      input: {
        name: "  Berlin support ",
        timeZone: "Europe/Berlin",
        intervals: [
          { weekday: 1, start: "13:00", end: "17:00" },
          { weekday: 1, start: "08:00", end: "12:00" },
          { weekday: 5, start: "22:00", end: "06:00" },
          { weekday: 6, start: "00:00", end: "24:00" },
        ],
        holidays: [
          { date: "2026-12-25", name: "Christmas" },
          { date: "2026-01-01", name: "New Year" },
        ],
      },
    });
    const cal = c.createBusinessCalendar;
    expect(cal).toMatchObject({
      __typename: "BusinessCalendar",
      name: "Berlin support",
      timeZone: "Europe/Berlin",
      // stored in canonical order
      intervals: [
        { weekday: 1, start: "08:00", end: "12:00" },
        { weekday: 1, start: "13:00", end: "17:00" },
        { weekday: 5, start: "22:00", end: "06:00" },
        { weekday: 6, start: "00:00", end: "24:00" },
      ],
      holidays: [
        { date: "2026-01-01", name: "New Year" },
        { date: "2026-12-25", name: "Christmas" },
      ],
    });

    const u = await t.ok(UPDATE_CAL, { id: cal.id, input: { timeZone: "America/New_York", intervals: [] } });
    expect(u.updateBusinessCalendar).toMatchObject({
      timeZone: "America/New_York",
      intervals: [],
      name: "Berlin support",
    });
    expect(u.updateBusinessCalendar.holidays).toHaveLength(2);

    const node = await t.ok(`query($id: ID!) { node(id: $id) { ... on BusinessCalendar { name } } }`, {
      id: cal.id,
    });
    expect(node.node.name).toBe("Berlin support");

    const listed = await t.ok(
      `{ businessCalendars(search: "berlin") { edges { node { id } } } }`,
      {},
      agentKey,
    );
    expect(listed.businessCalendars.edges.map((e: any) => e.node.id)).toEqual([cal.id]);

    const a = await t.ok(ARCHIVE_CAL, { id: cal.id });
    expect(a.archiveBusinessCalendar.archivedAt).not.toBeNull();
    const after = await t.ok(
      `{ active: businessCalendars(search: "berlin") { edges { node { id } } } all: businessCalendars(search: "berlin", includeArchived: true) { edges { node { id } } } }`,
    );
    expect(after.active.edges).toHaveLength(0);
    expect(after.all.edges).toHaveLength(1);
  });

  it.each([
    [{ timeZone: "Mars/Olympus" }, "timeZone"],
    [{ timeZone: undefined }, "timeZone"],
    [{ name: "" }, "name"],
    [{ name: "x".repeat(101) }, "name"],
    [{ intervals: [{ weekday: 0, start: "09:00", end: "17:00" }] }, "intervals[0].weekday"],
    [{ intervals: [{ weekday: 8, start: "09:00", end: "17:00" }] }, "intervals[0].weekday"],
    [
      {
        intervals: [
          { weekday: 1, start: "09:00", end: "17:00" },
          { weekday: 2, start: "08:00", end: "12:00" },
          { weekday: 2, start: "25:00", end: "17:00" },
        ],
      },
      "intervals[2].start",
    ],
    [{ intervals: [{ weekday: 1, start: "9:00", end: "17:00" }] }, "intervals[0].start"],
    [{ intervals: [{ weekday: 1, start: "09:00", end: "24:30" }] }, "intervals[0].end"],
    [
      { intervals: Array.from({ length: 51 }, () => ({ weekday: 1, start: "09:00", end: "10:00" })) },
      "intervals",
    ],
    [{ holidays: [{ date: "2026-02-30", name: "Nope" }] }, "holidays[0].date"],
    [{ holidays: [{ date: "2026-1-1", name: "Nope" }] }, "holidays[0].date"],
  ])("rejects %j naming %s", async (bad, field) => {
    const r = await t.ok(CREATE_CAL, { input: { name: "Bad", timeZone: "UTC", ...bad } });
    expect(r.createBusinessCalendar.__typename).toBe("ValidationError");
    expect(r.createBusinessCalendar.problems.map((p: { field: string }) => p.field)).toContain(field);
  });

  it("validates updates the same way", async () => {
    const cal = await createCalendar();
    const r = await t.ok(UPDATE_CAL, {
      id: cal.id,
      input: { intervals: [{ weekday: 7, start: "18:00", end: "25:00" }] },
    });
    expect(r.updateBusinessCalendar).toMatchObject({
      __typename: "ValidationError",
      field: "intervals[0].end",
    });
  });

  it("lets only ADMIN write and hides other tenants' calendars", async () => {
    const cal = await createCalendar();
    for (const key of [agentKey, supervisorKey]) {
      const r = await t.gql(CREATE_CAL, { input: { name: "x", timeZone: "UTC" } }, key);
      expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const i = await t.gql(IMPORT, { id: cal.id, ics: "" }, key);
      expect(i.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    }
    for (const q of [UPDATE_CAL, ARCHIVE_CAL]) {
      const r = await t.ok(q, { id: cal.id, input: { name: "Mine" } }, otherKey);
      expect(Object.values(r)[0]).toMatchObject({ __typename: "NotFoundError", entity: "BusinessCalendar" });
    }
    const imp = await t.ok(IMPORT, { id: cal.id, ics: "" }, otherKey);
    expect(imp.importCalendarHolidays.__typename).toBe("NotFoundError");
    const node = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: cal.id }, otherKey);
    expect(node.node).toBeNull();
  });
});

/** A holiday export as calendar apps produce it: CRLF, a folded SUMMARY, an alarm, junk lines. */
const ICS = [
  "BEGIN:VCALENDAR",
  "VERSION:2.0",
  "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
  "X-WR-CALNAME:Holidays in Germany",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20261225",
  "DTEND;VALUE=DATE:20261227",
  "DTSTAMP:20260101T000000Z",
  "UID:20261225_christmas@google.com",
  "SUMMARY:Christmas Day and Boxing",
  "  Day",
  "END:VEVENT",
  "%%% not an iCalendar line %%%",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20260501",
  "SUMMARY:Labour Day",
  "BEGIN:VALARM",
  "ACTION:DISPLAY",
  "TRIGGER:-P1D",
  "END:VALARM",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:20260101",
  "SUMMARY:New Year's Day (from feed)",
  "END:VEVENT",
  "BEGIN:VEVENT",
  "DTSTART;VALUE=DATE:2026XX01",
  "SUMMARY:Broken",
  "END:VEVENT",
  "END:VCALENDAR",
  "",
].join("\r\n");

describe("importCalendarHolidays", () => {
  it("merges a real-world-like file, keeping existing names, and reports skipped events", async () => {
    const cal = await createCalendar({ holidays: [{ date: "2026-01-01", name: "Neujahr" }] });
    const r = await t.ok(IMPORT, { id: cal.id, ics: ICS });
    expect(r.importCalendarHolidays).toMatchObject({ __typename: "HolidayImport", imported: 3, skipped: 1 });
    expect(r.importCalendarHolidays.calendar.holidays).toEqual([
      { date: "2026-01-01", name: "Neujahr" },
      { date: "2026-05-01", name: "Labour Day" },
      { date: "2026-12-25", name: "Christmas Day and Boxing Day" },
      { date: "2026-12-26", name: "Christmas Day and Boxing Day" },
    ]);
  });

  it("replaces the list with replace: true", async () => {
    const cal = await createCalendar({ holidays: [{ date: "2025-06-01", name: "Old" }] });
    const r = await t.ok(IMPORT, { id: cal.id, ics: ICS, replace: true });
    expect(r.importCalendarHolidays.imported).toBe(4);
    expect(r.importCalendarHolidays.calendar.holidays.map((h: { date: string }) => h.date)).toEqual([
      "2026-01-01",
      "2026-05-01",
      "2026-12-25",
      "2026-12-26",
    ]);
  });

  it("does not throw on garbage and refuses more than 500 holidays or 2,000,000 characters", async () => {
    const cal = await createCalendar();
    const junk = await t.ok(IMPORT, {
      id: cal.id,
      ics: "BEGIN:VEVENT\n\u0000garbage:::\nEND:VEVENT\nnonsense",
    });
    expect(junk.importCalendarHolidays).toMatchObject({ imported: 0, skipped: 1 });
    const many = Array.from({ length: 501 }, (_v, i) => {
      const d = new Date(Date.UTC(2026, 0, 1 + i)).toISOString().slice(0, 10).replaceAll("-", "");
      return `BEGIN:VEVENT\nDTSTART;VALUE=DATE:${d}\nSUMMARY:d${i}\nEND:VEVENT`;
    }).join("\n");
    const r = await t.ok(IMPORT, { id: cal.id, ics: many });
    expect(r.importCalendarHolidays).toMatchObject({ __typename: "ValidationError", field: "ics" });
    const huge = await t.ok(IMPORT, { id: cal.id, ics: `BEGIN:VCALENDAR\n${"X".repeat(2_000_000)}` });
    expect(huge.importCalendarHolidays).toMatchObject({ __typename: "ValidationError", field: "ics" });
  });
});

describe("SLA policies", () => {
  it("creates from days/hours/minutes, shows the breakdown, updates and archives", async () => {
    const cal = await createCalendar();
    const c = await t.ok(CREATE_SLA, {
      input: {
        name: "Gold",
        firstResponse: { hours: 1, minutes: 90 },
        resolution: { days: 2, hours: 4 },
        warningPercent: 75,
        calendarId: cal.id,
      },
    });
    const p = c.createSlaPolicy;
    expect(p).toMatchObject({
      __typename: "SlaPolicy",
      name: "Gold",
      warningPercent: 75,
      calendar: { id: cal.id },
      firstResponse: { totalMinutes: 150, days: 0, hours: 2, minutes: 30, formatted: "2h 30m" },
      nextResponse: null,
      resolution: { totalMinutes: 2 * 1440 + 240, formatted: "2d 4h" },
    });
    const u = await t.ok(UPDATE_SLA, {
      id: p.id,
      input: { firstResponse: null, nextResponse: { minutes: 30 }, calendarId: null },
    });
    expect(u.updateSlaPolicy).toMatchObject({
      firstResponse: null,
      nextResponse: { totalMinutes: 30 },
      resolution: { totalMinutes: 3120 },
      calendar: null,
      warningPercent: 75,
    });
    const list = await t.ok(`{ slaPolicies(search: "gold") { edges { node { id name } } } }`, {}, agentKey);
    expect(list.slaPolicies.edges).toEqual([{ node: { id: p.id, name: "Gold" } }]);
    const a = await t.ok(ARCHIVE_SLA, { id: p.id });
    expect(a.archiveSlaPolicy.archivedAt).not.toBeNull();
  });

  it.each([
    [{ firstResponse: { minutes: 0 } }, "firstResponse"],
    [{ nextResponse: { minutes: 525_601 } }, "nextResponse"],
    [{ resolution: { days: 365, minutes: 1 } }, "resolution"],
    [{ resolution: { hours: -1, minutes: 120 } }, "resolution"],
    [{}, "firstResponse"],
    [{ firstResponse: null, nextResponse: null, resolution: null }, "firstResponse"],
    [{ firstResponse: { hours: 1 }, warningPercent: 0 }, "warningPercent"],
    [{ firstResponse: { hours: 1 }, warningPercent: 100 }, "warningPercent"],
    [{ firstResponse: { hours: 1 }, calendarId: "garbage" }, "calendarId"],
    [{ firstResponse: { hours: 1 }, name: "" }, "name"],
  ])("rejects %j naming %s", async (bad, field) => {
    const r = await t.ok(CREATE_SLA, { input: { name: "Bad", ...bad } });
    expect(r.createSlaPolicy.__typename).toBe("ValidationError");
    expect(r.createSlaPolicy.problems.map((p: { field: string }) => p.field)).toContain(field);
  });

  it("accepts the bounds 1 and 525,600 minutes", async () => {
    const r = await t.ok(CREATE_SLA, {
      input: { name: "Edges", firstResponse: { minutes: 1 }, resolution: { days: 365 } },
    });
    expect(r.createSlaPolicy).toMatchObject({
      firstResponse: { totalMinutes: 1 },
      resolution: { totalMinutes: 525_600 },
    });
  });

  it("resolves each policy's calendar in a list (batched, in order)", async () => {
    const cals = [];
    for (const name of ["Batch cal A", "Batch cal B", "Batch cal C"])
      cals.push(await createCalendar({ name }));
    const expected: Record<string, string | null> = {};
    for (const [i, cal] of [cals[2], cals[0], null, cals[1], cals[2]].entries()) {
      const r = await t.ok(CREATE_SLA, {
        input: { name: `Batch ${i}`, firstResponse: { hours: 1 }, calendarId: cal?.id ?? null },
      });
      expected[r.createSlaPolicy.id] = cal?.id ?? null;
    }
    const l = await t.ok(
      `{ slaPolicies(search: "batch", first: 10) { edges { node { id calendar { id } } } } }`,
    );
    expect(l.slaPolicies.edges).toHaveLength(5);
    for (const { node } of l.slaPolicies.edges) expect(node.calendar?.id ?? null).toBe(expected[node.id]);
  });

  it("refuses to drop the last target on update", async () => {
    const c = await t.ok(CREATE_SLA, { input: { name: "Only FR", firstResponse: { hours: 4 } } });
    const r = await t.ok(UPDATE_SLA, { id: c.createSlaPolicy.id, input: { firstResponse: null } });
    expect(r.updateSlaPolicy).toMatchObject({ __typename: "ValidationError", field: "firstResponse" });
  });

  it("rejects another tenant's or an archived calendar", async () => {
    const foreign = await t.ok(CREATE_CAL, { input: { name: "Theirs", timeZone: "UTC" } }, otherKey);
    const archived = await createCalendar();
    await t.ok(ARCHIVE_CAL, { id: archived.id });
    for (const calendarId of [foreign.createBusinessCalendar.id, archived.id]) {
      const r = await t.ok(CREATE_SLA, { input: { name: "x", firstResponse: { hours: 1 }, calendarId } });
      expect(r.createSlaPolicy).toMatchObject({ __typename: "ValidationError", field: "calendarId" });
    }
  });

  it("sets, reads and clears the tenant default; archiving the default clears it", async () => {
    const a = (await t.ok(CREATE_SLA, { input: { name: "Default A", firstResponse: { hours: 8 } } }))
      .createSlaPolicy;
    const b = (await t.ok(CREATE_SLA, { input: { name: "Default B", resolution: { days: 3 } } }))
      .createSlaPolicy;
    const DEFAULT = `{ tenantDefaultSlaPolicy { id name } }`;

    expect((await t.ok(SET_DEFAULT, { id: a.id })).setDefaultSlaPolicy.policy).toEqual({
      id: a.id,
      name: "Default A",
    });
    expect((await t.ok(DEFAULT, {}, agentKey)).tenantDefaultSlaPolicy).toEqual({
      id: a.id,
      name: "Default A",
    });

    // Archiving another policy leaves the default alone.
    await t.ok(SET_DEFAULT, { id: b.id });
    await t.ok(ARCHIVE_SLA, { id: a.id });
    expect((await t.ok(DEFAULT)).tenantDefaultSlaPolicy?.id).toBe(b.id);

    await t.ok(ARCHIVE_SLA, { id: b.id });
    expect((await t.ok(DEFAULT)).tenantDefaultSlaPolicy).toBeNull();

    const archived = await t.ok(SET_DEFAULT, { id: b.id });
    expect(archived.setDefaultSlaPolicy.__typename).toBe("ConflictError");

    const c = (await t.ok(CREATE_SLA, { input: { name: "Default C", firstResponse: { hours: 1 } } }))
      .createSlaPolicy;
    await t.ok(SET_DEFAULT, { id: c.id });
    expect((await t.ok(SET_DEFAULT, { id: null })).setDefaultSlaPolicy.policy).toBeNull();
    expect((await t.ok(DEFAULT)).tenantDefaultSlaPolicy).toBeNull();
  });

  it("lets only ADMIN write and hides other tenants' policies", async () => {
    const p = (await t.ok(CREATE_SLA, { input: { name: "Mine", firstResponse: { hours: 1 } } }))
      .createSlaPolicy;
    for (const key of [agentKey, supervisorKey]) {
      for (const [q, v] of [
        [CREATE_SLA, { input: { name: "x", firstResponse: { hours: 1 } } }],
        [UPDATE_SLA, { id: p.id, input: { name: "x" } }],
        [ARCHIVE_SLA, { id: p.id }],
        [SET_DEFAULT, { id: p.id }],
      ] as const) {
        const r = await t.gql(q, v, key);
        expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      }
    }
    for (const [q, v] of [
      [UPDATE_SLA, { id: p.id, input: { name: "x" } }],
      [ARCHIVE_SLA, { id: p.id }],
      [SET_DEFAULT, { id: p.id }],
    ] as const) {
      const r = await t.ok(q, v, otherKey);
      expect(Object.values(r)[0]).toMatchObject({ __typename: "NotFoundError", entity: "SlaPolicy" });
    }
    // The foreign admin's default stays unset.
    expect((await t.ok(`{ tenantDefaultSlaPolicy { id } }`, {}, otherKey)).tenantDefaultSlaPolicy).toBeNull();
  });
});

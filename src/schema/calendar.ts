import {
  archiveCalendar,
  type Calendar,
  createCalendar,
  getCalendar,
  type HolidayImportResult,
  importCalendarHolidays,
  listCalendars,
  updateCalendar,
} from "../engine/config/calendars.js";
import type { Holiday, OpeningInterval } from "../engine/domain.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

export const BusinessCalendarRef = builder.objectRef<Calendar>("BusinessCalendar");

const OpeningIntervalRef = builder.objectRef<OpeningInterval>("OpeningInterval").implement({
  description:
    "One weekly opening interval in the calendar's time zone. `end` <= `start` means it runs past midnight into the next weekday.",
  fields: (t) => ({
    weekday: t.exposeInt("weekday", { description: "ISO weekday: 1 = Monday … 7 = Sunday." }),
    start: t.exposeString("start", { description: 'Opening time "HH:MM" (00:00–23:59).' }),
    end: t.exposeString("end", { description: 'Closing time "HH:MM", or "24:00" for end of day.' }),
  }),
});

const HolidayRef = builder.objectRef<Holiday>("Holiday").implement({
  description: "A date the calendar is closed all day.",
  fields: (t) => ({
    date: t.exposeString("date", { description: '"YYYY-MM-DD" in the calendar\'s time zone.' }),
    name: t.exposeString("name", { description: "What the holiday is called (may be empty)." }),
  }),
});

builder.node(BusinessCalendarRef, {
  description:
    "Business hours (SPEC §2): a time zone, weekly opening intervals and holidays. Used by SLA policies, auto-assignment windows, rules and `@{next_working_date}`. Readable by every user of the tenant; written by ADMIN.",
  id: { resolve: (c) => c.id },
  loadOne: loadVisible(BusinessCalendarRef, getCalendar),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1–100 characters." }),
    timeZone: t.exposeString("timeZone", { description: "IANA time zone, e.g. Europe/Berlin." }),
    intervals: t.field({
      type: [OpeningIntervalRef],
      description: "Opening intervals, ordered by weekday and start; several per weekday are allowed.",
      resolve: (c) => c.intervals,
    }),
    holidays: t.field({
      type: [HolidayRef],
      description: "Closed dates, ordered by date.",
      resolve: (c) => c.holidays,
    }),
    archivedAt: t.expose("archivedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once archived.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const OpeningIntervalInput = builder.inputType("OpeningIntervalInput", {
  description: "One weekly opening interval. `end` <= `start` spans midnight.",
  fields: (t) => ({
    weekday: t.int({ required: true, description: "ISO weekday 1 (Monday) to 7 (Sunday)." }),
    start: t.string({ required: true, description: 'Opening time "HH:MM", 00:00–23:59 (two-digit hour).' }),
    end: t.string({ required: true, description: 'Closing time "HH:MM" 00:00–23:59, or "24:00".' }),
  }),
});

const HolidayInput = builder.inputType("HolidayInput", {
  description: "A closed date.",
  fields: (t) => ({
    date: t.string({ required: true, description: 'A real date "YYYY-MM-DD"; each date at most once.' }),
    name: t.string({ required: true, description: "Up to 100 characters." }),
  }),
});

const BusinessCalendarInput = builder.inputType("BusinessCalendarInput", {
  description: "Fields of a calendar. On update, omitted fields stay unchanged; lists are replaced whole.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters; required on create." }),
    timeZone: t.string({ description: "IANA time zone; required on create." }),
    intervals: t.field({ type: [OpeningIntervalInput], description: "At most 50 intervals." }),
    holidays: t.field({ type: [HolidayInput], description: "At most 200 holidays." }),
  }),
});

function calendarInput(input: typeof BusinessCalendarInput.$inferInput) {
  return {
    name: input.name ?? undefined,
    timeZone: input.timeZone ?? undefined,
    intervals: input.intervals ?? undefined,
    holidays: input.holidays ?? undefined,
  };
}

const HolidayImportRef = builder.objectRef<HolidayImportResult>("HolidayImport").implement({
  description: "Outcome of an iCalendar holiday import.",
  fields: (t) => ({
    calendar: t.field({
      type: BusinessCalendarRef,
      description: "The calendar after the import.",
      resolve: (r) => r.calendar,
    }),
    imported: t.exposeInt("imported", {
      description: "Dates added; with `replace`, the number of holidays the calendar now has.",
    }),
    skipped: t.exposeInt("skipped", {
      description:
        "Events that could not be used (unreadable or missing date, longer than 31 days, beyond 5,000 events).",
    }),
  }),
});

builder.queryFields((t) => ({
  businessCalendars: t.withAuth({ authenticated: true }).connection({
    type: BusinessCalendarRef,
    description: "Business-hours calendars of the caller's tenant, ordered by name. Any role.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived calendars (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listCalendars(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createBusinessCalendar: t.withAuth({ admin: true }).field({
    type: BusinessCalendarRef,
    description: "Creates a business-hours calendar. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({
        type: BusinessCalendarInput,
        required: true,
        description: "name and timeZone are required.",
      }),
    },
    resolve: (_root, { input }, ctx) => createCalendar(ctx.engine, ctx.viewer, calendarInput(input)),
  }),
  updateBusinessCalendar: t.withAuth({ admin: true }).field({
    type: BusinessCalendarRef,
    description: "Changes a calendar. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The calendar's global ID." }),
      input: t.arg({ type: BusinessCalendarInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateCalendar(ctx.engine, ctx.viewer, decodeId(String(id), "BusinessCalendar"), calendarInput(input)),
  }),
  archiveBusinessCalendar: t.withAuth({ admin: true }).field({
    type: BusinessCalendarRef,
    description: "Archives a calendar; queues and policies that use it keep it until changed. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The calendar's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveCalendar(ctx.engine, ctx.viewer, decodeId(String(id), "BusinessCalendar")),
  }),
  importCalendarHolidays: t.withAuth({ admin: true }).field({
    type: HolidayImportRef,
    description:
      "Adds holidays from an iCalendar (.ics) file's VEVENTs: all-day or timed DTSTART, multi-day events via DTEND, SUMMARY as name. Unreadable events are skipped and counted, never fatal. Recurrence (RRULE) is not expanded. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      calendarId: t.arg.id({ required: true, description: "The calendar's global ID." }),
      ics: t.arg.string({
        required: true,
        description: "The iCalendar text (RFC 5545), up to 2,000,000 characters; folded lines are fine.",
      }),
      replace: t.arg.boolean({
        description:
          "true: the file's holidays replace all existing ones. false (default): only new dates are added; existing dates keep their names.",
      }),
    },
    resolve: (_root, { calendarId, ics, replace }, ctx) =>
      importCalendarHolidays(
        ctx.engine,
        ctx.viewer,
        decodeId(String(calendarId), "BusinessCalendar"),
        ics,
        replace ?? false,
      ),
  }),
}));

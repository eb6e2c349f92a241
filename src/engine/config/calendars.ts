import { and, asc, eq, ilike, inArray, isNull, sql } from "drizzle-orm";
import { businessCalendar } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import type { Holiday, OpeningInterval } from "../domain.js";
import { type FieldProblem, NotFoundError, Problems, ValidationError } from "../errors.js";
import { CALENDAR_LIMITS, parseIcalFeed, validateCalendar } from "../time/calendar.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { inIdOrder, likePattern } from "./search.js";
import { checkName } from "./validate.js";

export type Calendar = typeof businessCalendar.$inferSelect;

/** A calendar as the API sends it; on update only the fields present change. */
export interface CalendarInput {
  name?: string;
  timeZone?: string;
  intervals?: readonly { weekday: number; start: string; end: string }[];
  holidays?: readonly { date: string; name: string }[];
}

export const MAX_ICS_CHARS = 2_000_000;
export const MAX_HOLIDAYS = CALENDAR_LIMITS.holidays;

/**
 * Every problem with a calendar as it would be stored: the name here, the rest by the
 * time module's `validateCalendar` — the one definition the business-hours math relies
 * on, so a calendar the API accepts can always be computed with. On update, `current`
 * fills the fields not sent.
 */
export function calendarProblems(input: CalendarInput, current?: Calendar): FieldProblem[] {
  const p = new Problems();
  if (!current) {
    p.check(input.name !== undefined, "name", "is required");
    p.check(input.timeZone !== undefined, "timeZone", "is required");
  }
  checkName(p, "name", input.name, 100);
  const whole = {
    timeZone: input.timeZone ?? current?.timeZone ?? "UTC",
    intervals: input.intervals ?? current?.intervals ?? [],
    holidays: input.holidays ?? current?.holidays ?? [],
  };
  const fields = new Set(Object.keys(input));
  for (const problem of validateCalendar(whole)) {
    // Report stored fields only when they were sent (an old row is not the caller's mistake).
    const top = problem.field.replace(/[[.].*$/, "");
    if (!current || fields.has(top)) p.add(problem.field, problem.message);
  }
  return p.list;
}

function checkCalendar(input: CalendarInput, current?: Calendar): void {
  const list = calendarProblems(input, current);
  if (list.length > 0) throw new ValidationError(list);
}

/** Canonical stored order: by weekday then start; holidays by date. Validated input only. */
function normaliseIntervals(intervals: readonly { weekday: number; start: string; end: string }[]) {
  return intervals
    .map((iv) => ({ weekday: iv.weekday, start: iv.start, end: iv.end }) as OpeningInterval)
    .sort((a, b) => a.weekday - b.weekday || a.start.localeCompare(b.start) || a.end.localeCompare(b.end));
}

function normaliseHolidays(holidays: readonly { date: string; name: string }[]): Holiday[] {
  return holidays
    .map((h) => ({ date: h.date, name: h.name.trim() }))
    .sort((a, b) => a.date.localeCompare(b.date));
}

/** Readable by every user of the tenant: agents see opening hours and next working dates. */
export async function listCalendars(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<Calendar[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(businessCalendar)
    .where(
      and(
        eq(businessCalendar.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(businessCalendar.archivedAt),
        filter.search ? ilike(businessCalendar.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${businessCalendar.name})`), asc(businessCalendar.id))
    .limit(limit)
    .offset(offset);
}

export async function getCalendar(ctx: EngineContext, viewer: Viewer, id: string): Promise<Calendar> {
  const [row] = await ctx.db
    .select()
    .from(businessCalendar)
    .where(and(eq(businessCalendar.id, id), eq(businessCalendar.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("BusinessCalendar", id);
  return row;
}

/** Batch lookup for DataLoaders: one query for every calendar a response refers to. */
export async function getCalendarsByIds(
  ctx: EngineContext,
  viewer: Viewer,
  ids: readonly string[],
): Promise<(Calendar | null)[]> {
  if (ids.length === 0) return [];
  const rows = await ctx.db
    .select()
    .from(businessCalendar)
    .where(and(eq(businessCalendar.tenantId, viewer.tenantId), inArray(businessCalendar.id, [...ids])));
  return inIdOrder(ids, rows);
}

function columns(input: CalendarInput) {
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.timeZone !== undefined ? { timeZone: input.timeZone } : {}),
    ...(input.intervals !== undefined ? { intervals: normaliseIntervals(input.intervals) } : {}),
    ...(input.holidays !== undefined ? { holidays: normaliseHolidays(input.holidays) } : {}),
  };
}

export async function createCalendar(
  ctx: EngineContext,
  viewer: Viewer,
  input: CalendarInput,
): Promise<Calendar> {
  requireRole(viewer, "ADMIN");
  checkCalendar(input);
  const [row] = await ctx.db
    .insert(businessCalendar)
    .values({
      tenantId: viewer.tenantId,
      name: input.name!.trim(),
      timeZone: input.timeZone!,
      intervals: [],
      holidays: [],
      ...columns(input),
    })
    .returning();
  return row!;
}

export async function updateCalendar(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: CalendarInput,
): Promise<Calendar> {
  requireRole(viewer, "ADMIN");
  checkCalendar(input, await getCalendar(ctx, viewer, id));
  const set = columns(input);
  if (Object.keys(set).length === 0) return getCalendar(ctx, viewer, id);
  const [row] = await ctx.db
    .update(businessCalendar)
    .set(set)
    .where(and(eq(businessCalendar.id, id), eq(businessCalendar.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

/** Archived, not deleted: queues and SLA policies keep pointing at it until changed. */
export async function archiveCalendar(ctx: EngineContext, viewer: Viewer, id: string): Promise<Calendar> {
  requireRole(viewer, "ADMIN");
  await getCalendar(ctx, viewer, id);
  const [row] = await ctx.db
    .update(businessCalendar)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(businessCalendar.id, id), eq(businessCalendar.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

export interface HolidayImportResult {
  calendar: Calendar;
  /** Dates added (or, with replace, the new total). */
  imported: number;
  /** Events the parser could not use. */
  skipped: number;
}

/**
 * Merges holidays from an iCalendar file. Without `replace`, dates already in the
 * calendar keep their name (an admin's edit beats a feed); with it, the file's holidays
 * become the whole list.
 */
export async function importCalendarHolidays(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  ics: string,
  replace: boolean,
): Promise<HolidayImportResult> {
  requireRole(viewer, "ADMIN");
  // 5,000 events of a typical feed are well under 2 MB; more is not a holiday calendar.
  if (ics.length > MAX_ICS_CHARS) {
    throw new ValidationError({ field: "ics", message: "at most 2,000,000 characters" });
  }
  const parsed = parseIcalFeed(ics);
  return ctx.db.transaction(async (tx) => {
    // FOR UPDATE: two imports at once must not each merge into the same old list.
    const [cal] = await tx
      .select()
      .from(businessCalendar)
      .where(and(eq(businessCalendar.id, id), eq(businessCalendar.tenantId, viewer.tenantId)))
      .for("update");
    if (!cal) throw new NotFoundError("BusinessCalendar", id);
    let merged: Holiday[];
    let imported: number;
    if (replace) {
      merged = parsed.holidays;
      imported = parsed.holidays.length;
    } else {
      const known = new Set(cal.holidays.map((h) => h.date));
      const added = parsed.holidays.filter((h) => !known.has(h.date));
      merged = [...cal.holidays, ...added];
      imported = added.length;
    }
    const p = new Problems();
    p.check(
      merged.length <= MAX_HOLIDAYS,
      "ics",
      `the calendar would hold ${merged.length} holidays; at most ${MAX_HOLIDAYS} are allowed`,
    );
    p.throwIfAny();
    const [row] = await tx
      .update(businessCalendar)
      .set({ holidays: normaliseHolidays(merged) })
      .where(eq(businessCalendar.id, id))
      .returning();
    return { calendar: row!, imported, skipped: parsed.skipped };
  });
}

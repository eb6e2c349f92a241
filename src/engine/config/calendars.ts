import { and, asc, eq, ilike, inArray, isNull, sql } from "drizzle-orm";
import { businessCalendar } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import type { Holiday } from "../domain.js";
import { NotFoundError, Problems, ValidationError } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import {
  type CalendarShapeInput,
  MAX_HOLIDAYS,
  normaliseHolidays,
  normaliseIntervals,
  validateCalendarInput,
} from "./calendar-input.js";
import { parseIcalHolidays } from "./ical.js";
import { clampPage, type Page } from "./paging.js";
import { inIdOrder, likePattern } from "./search.js";

export type Calendar = typeof businessCalendar.$inferSelect;
export type CalendarInput = CalendarShapeInput;

export const MAX_ICS_CHARS = 2_000_000;

function checkCalendar(input: CalendarInput, creating: boolean): void {
  const p = new Problems();
  if (creating) {
    p.check(input.name !== undefined, "name", "is required");
    p.check(input.timeZone !== undefined, "timeZone", "is required");
  }
  validateCalendarInput(p, input);
  p.throwIfAny();
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
  checkCalendar(input, true);
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
  checkCalendar(input, false);
  await getCalendar(ctx, viewer, id);
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
  const parsed = parseIcalHolidays(ics);
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

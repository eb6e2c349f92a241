import { and, asc, eq, ilike, isNull, sql } from "drizzle-orm";
import { businessCalendar, slaPolicy, tenant } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { ConflictError, NotFoundError, Problems } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { checkName } from "./validate.js";

export type SlaPolicy = typeof slaPolicy.$inferSelect;

/**
 * SLA targets are stored as business minutes. Clients may give days/hours/minutes; a
 * "day" is 24 business hours (1,440 business minutes), NOT "until the same time on the
 * next working day": the stored target must not change meaning when a calendar changes.
 */
export const MINUTES_PER_DAY = 1440;
export const MAX_TARGET_MINUTES = 525_600;

export interface DurationParts {
  days?: number | null;
  hours?: number | null;
  minutes?: number | null;
}

/** NaN when a part is negative or fractional, so range validation reports it. */
export function durationToMinutes(d: DurationParts): number {
  const parts = [d.days ?? 0, d.hours ?? 0, d.minutes ?? 0];
  if (parts.some((x) => !Number.isInteger(x) || x < 0)) return Number.NaN;
  return parts[0]! * MINUTES_PER_DAY + parts[1]! * 60 + parts[2]!;
}

/** The canonical breakdown of a target: minutes < 60, hours < 24. */
export function minutesToDuration(total: number): { days: number; hours: number; minutes: number } {
  return {
    days: Math.floor(total / MINUTES_PER_DAY),
    hours: Math.floor((total % MINUTES_PER_DAY) / 60),
    minutes: total % 60,
  };
}

/** "1d 2h 30m" — zero parts left out; "0m" never occurs (targets are ≥ 1). */
export function formatDuration(total: number): string {
  const d = minutesToDuration(total);
  return [d.days && `${d.days}d`, d.hours && `${d.hours}h`, d.minutes && `${d.minutes}m`]
    .filter(Boolean)
    .join(" ");
}

export interface SlaPolicyInput {
  name?: string;
  /** undefined = unchanged; null = no target of this kind; a number = business minutes. */
  firstResponseMinutes?: number | null;
  nextResponseMinutes?: number | null;
  resolutionMinutes?: number | null;
  warningPercent?: number;
  calendarId?: string | null;
}

const TARGETS = ["firstResponseMinutes", "nextResponseMinutes", "resolutionMinutes"] as const;
/** GraphQL input names (the parts objects) for error paths clients can map to fields. */
const TARGET_FIELDS = {
  firstResponseMinutes: "firstResponse",
  nextResponseMinutes: "nextResponse",
  resolutionMinutes: "resolution",
} as const;

function checkPolicy(input: SlaPolicyInput, existing: SlaPolicy | null): void {
  const p = new Problems();
  if (!existing) p.check(input.name !== undefined, "name", "is required");
  checkName(p, "name", input.name);
  for (const k of TARGETS) {
    const v = input[k];
    if (v === undefined || v === null) continue;
    p.check(
      Number.isInteger(v) && v >= 1 && v <= MAX_TARGET_MINUTES,
      TARGET_FIELDS[k],
      `must be from 1 to ${MAX_TARGET_MINUTES.toLocaleString("en-US")} business minutes (365 days), with non-negative whole days/hours/minutes`,
    );
  }
  const after = TARGETS.map((k) => (input[k] !== undefined ? input[k] : (existing?.[k] ?? null)));
  p.check(
    after.some((v) => v !== null),
    "firstResponse",
    "at least one target (first response, next response or resolution) is required",
  );
  if (input.warningPercent !== undefined) {
    const w = input.warningPercent;
    p.check(
      Number.isInteger(w) && w >= 1 && w <= 99,
      "warningPercent",
      "must be a whole number from 1 to 99",
    );
  }
  p.throwIfAny();
}

async function checkCalendarRef(ctx: EngineContext, viewer: Viewer, calendarId: string | null | undefined) {
  if (!calendarId) return;
  const [cal] = await ctx.db
    .select({ archivedAt: businessCalendar.archivedAt })
    .from(businessCalendar)
    .where(and(eq(businessCalendar.id, calendarId), eq(businessCalendar.tenantId, viewer.tenantId)));
  const p = new Problems();
  if (!cal) p.add("calendarId", "no such business-hours calendar");
  else p.check(cal.archivedAt === null, "calendarId", "the calendar is archived");
  p.throwIfAny();
}

function columns(input: SlaPolicyInput) {
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.firstResponseMinutes !== undefined ? { firstResponseMinutes: input.firstResponseMinutes } : {}),
    ...(input.nextResponseMinutes !== undefined ? { nextResponseMinutes: input.nextResponseMinutes } : {}),
    ...(input.resolutionMinutes !== undefined ? { resolutionMinutes: input.resolutionMinutes } : {}),
    ...(input.warningPercent !== undefined ? { warningPercent: input.warningPercent } : {}),
    ...(input.calendarId !== undefined ? { calendarId: input.calendarId } : {}),
  };
}

export async function listSlaPolicies(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<SlaPolicy[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(slaPolicy)
    .where(
      and(
        eq(slaPolicy.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(slaPolicy.archivedAt),
        filter.search ? ilike(slaPolicy.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${slaPolicy.name})`), asc(slaPolicy.id))
    .limit(limit)
    .offset(offset);
}

export async function getSlaPolicy(ctx: EngineContext, viewer: Viewer, id: string): Promise<SlaPolicy> {
  const [row] = await ctx.db
    .select()
    .from(slaPolicy)
    .where(and(eq(slaPolicy.id, id), eq(slaPolicy.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("SlaPolicy", id);
  return row;
}

export async function createSlaPolicy(
  ctx: EngineContext,
  viewer: Viewer,
  input: SlaPolicyInput,
): Promise<SlaPolicy> {
  requireRole(viewer, "ADMIN");
  checkPolicy(input, null);
  await checkCalendarRef(ctx, viewer, input.calendarId);
  const [row] = await ctx.db
    .insert(slaPolicy)
    .values({ tenantId: viewer.tenantId, name: input.name!.trim(), ...columns(input) })
    .returning();
  return row!;
}

export async function updateSlaPolicy(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: SlaPolicyInput,
): Promise<SlaPolicy> {
  requireRole(viewer, "ADMIN");
  const existing = await getSlaPolicy(ctx, viewer, id);
  checkPolicy(input, existing);
  await checkCalendarRef(ctx, viewer, input.calendarId);
  const set = columns(input);
  if (Object.keys(set).length === 0) return existing;
  const [row] = await ctx.db
    .update(slaPolicy)
    .set(set)
    .where(and(eq(slaPolicy.id, id), eq(slaPolicy.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

/** Archiving the tenant default also clears the default, in the same transaction. */
export async function archiveSlaPolicy(ctx: EngineContext, viewer: Viewer, id: string): Promise<SlaPolicy> {
  requireRole(viewer, "ADMIN");
  await getSlaPolicy(ctx, viewer, id);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(slaPolicy)
      .set({ archivedAt: ctx.clock.now() })
      .where(and(eq(slaPolicy.id, id), eq(slaPolicy.tenantId, viewer.tenantId)))
      .returning();
    await tx
      .update(tenant)
      .set({ defaultSlaPolicyId: null })
      .where(and(eq(tenant.id, viewer.tenantId), eq(tenant.defaultSlaPolicyId, id)));
    return row!;
  });
}

/** The policy that applies when neither address nor queue names one; null = no SLA. */
export async function getTenantDefaultSlaPolicy(
  ctx: EngineContext,
  viewer: Viewer,
): Promise<SlaPolicy | null> {
  const [row] = await ctx.db
    .select({ policy: slaPolicy })
    .from(tenant)
    .innerJoin(slaPolicy, and(eq(slaPolicy.id, tenant.defaultSlaPolicyId), eq(slaPolicy.tenantId, tenant.id)))
    .where(eq(tenant.id, viewer.tenantId));
  return row?.policy ?? null;
}

/** id null clears the default. An archived policy cannot become the default. */
export async function setDefaultSlaPolicy(
  ctx: EngineContext,
  viewer: Viewer,
  id: string | null,
): Promise<SlaPolicy | null> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    let policy: SlaPolicy | null = null;
    if (id !== null) {
      // FOR UPDATE: a concurrent archive must not leave an archived policy as the default.
      const [row] = await tx
        .select()
        .from(slaPolicy)
        .where(and(eq(slaPolicy.id, id), eq(slaPolicy.tenantId, viewer.tenantId)))
        .for("update");
      if (!row) throw new NotFoundError("SlaPolicy", id);
      if (row.archivedAt) throw new ConflictError("An archived SLA policy cannot be the tenant default");
      policy = row;
    }
    await tx.update(tenant).set({ defaultSlaPolicyId: id }).where(eq(tenant.id, viewer.tenantId));
    return policy;
  });
}

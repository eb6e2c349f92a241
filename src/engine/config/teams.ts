import { and, asc, eq, ilike, isNull, sql } from "drizzle-orm";
import { team } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { NotFoundError, Problems, ValidationError } from "../errors.js";
import { routeQueuesServed } from "../routing/supply.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { checkName, checkText, validateInboxLimit } from "./validate.js";

export type Team = typeof team.$inferSelect;

export interface TeamInput {
  name?: string;
  description?: string;
  /** null = system default; "OFF" = no automatic delivery; a number = the limit. */
  inboxLimit?: number | "OFF" | null;
}

function checkTeam(input: TeamInput, creating: boolean): void {
  const p = new Problems();
  if (creating && input.name === undefined) p.add("name", "is required");
  checkName(p, "name", input.name);
  checkText(p, "description", input.description, 2000, { multiline: true });
  if (input.inboxLimit !== undefined) validateInboxLimit(p, "inboxLimit", input.inboxLimit);
  p.throwIfAny();
}

function inboxColumns(limit: TeamInput["inboxLimit"]) {
  if (limit === undefined) return {};
  return limit === "OFF"
    ? { inboxLimit: null, inboxLimitOff: true }
    : { inboxLimit: limit, inboxLimitOff: false };
}

/** 23505 unique_violation on the per-tenant name index → a field error instead of a crash. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as {
    code?: string;
    constraint_name?: string;
    cause?: { code?: string; constraint_name?: string };
  };
  const code = e.code ?? e.cause?.code;
  const name = e.constraint_name ?? e.cause?.constraint_name;
  return code === "23505" && (!constraint || name === constraint);
}

export async function listTeams(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<Team[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(team)
    .where(
      and(
        eq(team.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(team.archivedAt),
        filter.search ? ilike(team.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${team.name})`), asc(team.id))
    .limit(limit)
    .offset(offset);
}

export async function getTeam(ctx: EngineContext, viewer: Viewer, id: string): Promise<Team> {
  const [row] = await ctx.db
    .select()
    .from(team)
    .where(and(eq(team.id, id), eq(team.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("Team", id);
  return row;
}

export async function createTeam(ctx: EngineContext, viewer: Viewer, input: TeamInput): Promise<Team> {
  requireRole(viewer, "ADMIN");
  checkTeam(input, true);
  try {
    const [row] = await ctx.db
      .insert(team)
      .values({
        tenantId: viewer.tenantId,
        name: input.name!.trim(),
        description: input.description ?? "",
        ...inboxColumns(input.inboxLimit),
      })
      .returning();
    return row!;
  } catch (err) {
    if (isUniqueViolation(err, "team_tenant_name_uq")) {
      throw new ValidationError({ field: "name", message: "a team with this name already exists" });
    }
    throw err;
  }
}

export async function updateTeam(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: TeamInput,
): Promise<Team> {
  requireRole(viewer, "ADMIN");
  checkTeam(input, false);
  const existing = await getTeam(ctx, viewer, id);
  const set = {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...inboxColumns(input.inboxLimit),
  };
  if (Object.keys(set).length === 0) return existing;
  let updated: Team;
  try {
    const [row] = await ctx.db
      .update(team)
      .set(set)
      .where(and(eq(team.id, id), eq(team.tenantId, viewer.tenantId)))
      .returning();
    updated = row!;
  } catch (err) {
    if (isUniqueViolation(err, "team_tenant_name_uq")) {
      throw new ValidationError({ field: "name", message: "a team with this name already exists" });
    }
    throw err;
  }
  // The team limit is the default of its agents: a change routes every queue they serve.
  if (input.inboxLimit !== undefined) await routeQueuesServed(ctx, viewer.tenantId, { teamIds: [id] });
  return updated;
}

/** Archived, not deleted: users, queue memberships and history still refer to it. */
export async function archiveTeam(ctx: EngineContext, viewer: Viewer, id: string): Promise<Team> {
  requireRole(viewer, "ADMIN");
  await getTeam(ctx, viewer, id);
  const [row] = await ctx.db
    .update(team)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(team.id, id), eq(team.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

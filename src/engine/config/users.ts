import { and, asc, count, eq, ilike, inArray, isNull, ne, or, sql } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import { accessProfile, agentSkill, apiKey, skill, team, tenant, user } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import type { Role } from "../domain.js";
import { ROLES } from "../domain.js";
import { ConflictError, NotFoundError, Problems, ValidationError } from "../errors.js";
import { routeQueuesServed } from "../routing/supply.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { isUniqueViolation } from "./teams.js";
import { checkEmail, checkName, validateInboxLimit } from "./validate.js";

export type User = typeof user.$inferSelect;

export interface UserInput {
  email?: string;
  name?: string;
  /** null clears it. */
  alias?: string | null;
  role?: Role;
  /** null = no team. */
  teamId?: string | null;
  /** null = no profile (role defaults: supervisors all queues, agents their memberships). */
  accessProfileId?: string | null;
  /** null = inherit the team's; "OFF"; or a number 0–1,000. */
  inboxLimit?: number | "OFF" | null;
}

export interface AgentSkillInput {
  skillId: string;
  /** 1 (novice) … 10 (expert). */
  proficiency: number;
}

export interface AgentSkill {
  userId: string;
  skill: typeof skill.$inferSelect;
  proficiency: number;
}

/** ADMIN and SUPERVISOR see every user of the tenant; an AGENT sees only itself. */
function visibilityFilter(viewer: Viewer) {
  return viewer.role === "AGENT" ? eq(user.id, viewer.userId) : undefined;
}

export async function listUsers(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; role?: Role | null; teamId?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<User[]> {
  const { limit, offset } = clampPage(page);
  const like = filter.search ? likePattern(filter.search) : null;
  return ctx.db
    .select()
    .from(user)
    .where(
      and(
        eq(user.tenantId, viewer.tenantId),
        visibilityFilter(viewer),
        filter.includeArchived ? undefined : isNull(user.archivedAt),
        filter.role ? eq(user.role, filter.role) : undefined,
        filter.teamId ? eq(user.teamId, filter.teamId) : undefined,
        like ? or(ilike(user.name, like), ilike(user.email, like), ilike(user.alias, like)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${user.name})`), asc(user.id))
    .limit(limit)
    .offset(offset);
}

export async function getUser(ctx: EngineContext, viewer: Viewer, id: string): Promise<User> {
  const [row] = await ctx.db
    .select()
    .from(user)
    .where(and(eq(user.id, id), eq(user.tenantId, viewer.tenantId), visibilityFilter(viewer)));
  if (!row) throw new NotFoundError("User", id);
  return row;
}

/** Batch load for DataLoaders, same visibility as getUser; missing IDs are absent. */
export async function usersByIds(ctx: EngineContext, viewer: Viewer, ids: readonly string[]) {
  if (ids.length === 0) return [];
  return ctx.db
    .select()
    .from(user)
    .where(and(eq(user.tenantId, viewer.tenantId), visibilityFilter(viewer), inArray(user.id, [...ids])));
}

/** Teams by ID for User.team and the effective inbox limit (one query per request batch). */
export async function teamsByIds(ctx: EngineContext, tenantId: string, ids: readonly string[]) {
  if (ids.length === 0) return [];
  return ctx.db
    .select()
    .from(team)
    .where(and(eq(team.tenantId, tenantId), inArray(team.id, [...ids])));
}

/** Every listed user's active skills, in one query, ordered by skill name. */
export async function agentSkillsByUserIds(
  ctx: EngineContext,
  tenantId: string,
  userIds: readonly string[],
): Promise<AgentSkill[]> {
  if (userIds.length === 0) return [];
  const rows = await ctx.db
    .select({ userId: agentSkill.userId, proficiency: agentSkill.proficiency, skill })
    .from(agentSkill)
    .innerJoin(skill, eq(skill.id, agentSkill.skillId))
    .where(
      and(
        eq(agentSkill.tenantId, tenantId),
        inArray(agentSkill.userId, [...userIds]),
        isNull(skill.archivedAt),
      ),
    )
    .orderBy(asc(sql`lower(${skill.name})`));
  return rows;
}

function inboxColumns(limit: UserInput["inboxLimit"]) {
  if (limit === undefined) return {};
  return limit === "OFF"
    ? { inboxLimit: null, inboxLimitOff: true }
    : { inboxLimit: limit, inboxLimitOff: false };
}

/**
 * Field rules, then references: a team or access profile that is unknown, foreign or
 * archived is reported on its field (not as NotFound: the user being edited exists).
 */
async function checkUser(ctx: EngineContext, viewer: Viewer, input: UserInput, creating: boolean) {
  const p = new Problems();
  if (creating || input.email !== undefined) checkEmail(p, "email", input.email?.trim());
  if (creating && input.name === undefined) p.add("name", "is required");
  checkName(p, "name", input.name);
  if (input.alias !== undefined && input.alias !== null) checkName(p, "alias", input.alias);
  if (creating && input.role === undefined) p.add("role", "is required");
  if (input.role !== undefined) p.check(ROLES.includes(input.role), "role", "unknown role");
  if (input.inboxLimit !== undefined) validateInboxLimit(p, "inboxLimit", input.inboxLimit);
  if (input.teamId) {
    const [t] = await ctx.db
      .select({ archivedAt: team.archivedAt })
      .from(team)
      .where(and(eq(team.id, input.teamId), eq(team.tenantId, viewer.tenantId)));
    if (!t) p.add("teamId", "no such team");
    else if (t.archivedAt) p.add("teamId", "the team is archived");
  }
  if (input.accessProfileId) {
    const [a] = await ctx.db
      .select({ archivedAt: accessProfile.archivedAt })
      .from(accessProfile)
      .where(and(eq(accessProfile.id, input.accessProfileId), eq(accessProfile.tenantId, viewer.tenantId)));
    if (!a) p.add("accessProfileId", "no such access profile");
    else if (a.archivedAt) p.add("accessProfileId", "the access profile is archived");
  }
  p.throwIfAny();
}

// user_tenant_email_uq is not partial: an archived user's address stays taken, so a
// returning person is un-archived rather than duplicated (history keeps one identity).
const DUPLICATE = { field: "email", message: "a user with this email already exists (possibly archived)" };

export async function createUser(ctx: EngineContext, viewer: Viewer, input: UserInput): Promise<User> {
  requireRole(viewer, "ADMIN");
  await checkUser(ctx, viewer, input, true);
  try {
    const [row] = await ctx.db
      .insert(user)
      .values({
        tenantId: viewer.tenantId,
        email: input.email!.trim().toLowerCase(),
        name: input.name!.trim(),
        alias: input.alias?.trim() || null,
        role: input.role!,
        teamId: input.teamId ?? null,
        accessProfileId: input.accessProfileId ?? null,
        ...inboxColumns(input.inboxLimit),
      })
      .returning();
    return row!;
  } catch (err) {
    if (isUniqueViolation(err, "user_tenant_email_uq")) throw new ValidationError(DUPLICATE);
    throw err;
  }
}

/**
 * The tenant must keep one active ADMIN, or nobody could configure it again. Runs inside
 * the caller's transaction with the tenant row locked, so two admins demoting each other
 * at the same time cannot both pass the count (the second waits and then sees one admin).
 */
async function assertOtherActiveAdmin(tx: Tx, viewer: Viewer, id: string) {
  await tx.select({ id: tenant.id }).from(tenant).where(eq(tenant.id, viewer.tenantId)).for("update");
  const [others] = await tx
    .select({ n: count() })
    .from(user)
    .where(
      and(
        eq(user.tenantId, viewer.tenantId),
        eq(user.role, "ADMIN"),
        isNull(user.archivedAt),
        ne(user.id, id),
      ),
    );
  if ((others?.n ?? 0) === 0) {
    throw new ConflictError("The tenant's last active ADMIN cannot be demoted or archived", "LAST_ADMIN");
  }
}

export async function updateUser(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: UserInput,
): Promise<User> {
  requireRole(viewer, "ADMIN");
  const current = await getUser(ctx, viewer, id);
  await checkUser(ctx, viewer, input, false);
  const demotesAdmin =
    current.role === "ADMIN" && input.role !== undefined && input.role !== "ADMIN" && !current.archivedAt;
  let updated: User;
  try {
    updated = await ctx.db.transaction(async (tx) => {
      if (demotesAdmin) await assertOtherActiveAdmin(tx, viewer, id);
      const [row] = await tx
        .update(user)
        .set({
          ...(input.email !== undefined ? { email: input.email.trim().toLowerCase() } : {}),
          ...(input.name !== undefined ? { name: input.name.trim() } : {}),
          ...(input.alias !== undefined ? { alias: input.alias?.trim() || null } : {}),
          ...(input.role !== undefined ? { role: input.role } : {}),
          ...(input.teamId !== undefined ? { teamId: input.teamId } : {}),
          ...(input.accessProfileId !== undefined ? { accessProfileId: input.accessProfileId } : {}),
          ...inboxColumns(input.inboxLimit),
          updatedAt: ctx.clock.now(),
        })
        .where(and(eq(user.id, id), eq(user.tenantId, viewer.tenantId)))
        .returning();
      return row!;
    });
  } catch (err) {
    if (isUniqueViolation(err, "user_tenant_email_uq")) throw new ValidationError(DUPLICATE);
    throw err;
  }
  // A new limit or team can add supply (a team brings its queues and its default limit):
  // route the queues the agent now serves, after commit.
  if (input.inboxLimit !== undefined || input.teamId !== undefined) {
    await routeQueuesServed(ctx, viewer.tenantId, { agentIds: [id] });
  }
  return updated;
}

/**
 * Archived users can no longer authenticate: loadViewer ignores them, and their keys are
 * revoked in the same transaction so restoring a user never revives an old key (a leaver's
 * laptop key must stay dead). They are logged out; history keeps referring to them.
 */
export async function archiveUser(ctx: EngineContext, viewer: Viewer, id: string): Promise<User> {
  requireRole(viewer, "ADMIN");
  const current = await getUser(ctx, viewer, id);
  if (current.archivedAt) return current;
  const now = ctx.clock.now();
  return ctx.db.transaction(async (tx) => {
    if (current.role === "ADMIN") await assertOtherActiveAdmin(tx, viewer, id);
    const [row] = await tx
      .update(user)
      .set({ archivedAt: now, loggedIn: false, presence: "OFFLINE", presenceChangedAt: now })
      .where(and(eq(user.id, id), eq(user.tenantId, viewer.tenantId)))
      .returning();
    await tx
      .update(apiKey)
      .set({ revokedAt: now })
      .where(and(eq(apiKey.userId, id), eq(apiKey.tenantId, viewer.tenantId), isNull(apiKey.revokedAt)));
    return row!;
  });
}

/** Brings an archived user back (its email is still reserved for it); it needs a new API key. */
export async function restoreUser(ctx: EngineContext, viewer: Viewer, id: string): Promise<User> {
  requireRole(viewer, "ADMIN");
  const current = await getUser(ctx, viewer, id);
  if (!current.archivedAt) return current;
  const [row] = await ctx.db
    .update(user)
    .set({ archivedAt: null, updatedAt: ctx.clock.now() })
    .where(and(eq(user.id, id), eq(user.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

/** Replaces the agent's whole skill set in one transaction; an empty list removes all. */
export async function setAgentSkills(
  ctx: EngineContext,
  viewer: Viewer,
  userId: string,
  skills: AgentSkillInput[],
): Promise<User> {
  requireRole(viewer, "ADMIN");
  const target = await getUser(ctx, viewer, userId);
  const p = new Problems();
  p.check(skills.length <= 200, "skills", "at most 200 skills");
  const seen = new Set<string>();
  skills.forEach((s, i) => {
    p.check(
      Number.isInteger(s.proficiency) && s.proficiency >= 1 && s.proficiency <= 10,
      `skills[${i}].proficiency`,
      "must be a whole number from 1 to 10",
    );
    if (seen.has(s.skillId)) p.add(`skills[${i}].skillId`, "is listed twice");
    seen.add(s.skillId);
  });
  if (skills.length > 0 && skills.length <= 200) {
    const found = await ctx.db
      .select({ id: skill.id })
      .from(skill)
      .where(
        and(
          eq(skill.tenantId, viewer.tenantId),
          isNull(skill.archivedAt),
          inArray(
            skill.id,
            skills.map((s) => s.skillId),
          ),
        ),
      );
    const ok = new Set(found.map((r) => r.id));
    skills.forEach((s, i) => {
      if (!ok.has(s.skillId)) p.add(`skills[${i}].skillId`, "no such skill");
    });
  }
  p.throwIfAny();
  await ctx.db.transaction(async (tx) => {
    await tx.delete(agentSkill).where(eq(agentSkill.userId, target.id));
    if (skills.length > 0) {
      await tx.insert(agentSkill).values(
        skills.map((s) => ({
          tenantId: viewer.tenantId,
          userId: target.id,
          skillId: s.skillId,
          proficiency: s.proficiency,
        })),
      );
    }
  });
  // New or better skills can make the agent eligible for waiting work.
  await routeQueuesServed(ctx, viewer.tenantId, { agentIds: [target.id] });
  return target;
}

import { and, asc, eq, ilike, inArray, isNull, sql } from "drizzle-orm";
import { skill } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { NotFoundError, Problems, ValidationError } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { isUniqueViolation } from "./teams.js";
import { checkText } from "./validate.js";

export type Skill = typeof skill.$inferSelect;

export interface SkillInput {
  name?: string;
  description?: string;
}

/** SPEC §1: 2–30 letters (any script), digits and `- _ . :`; no spaces. */
const SKILL_NAME_RE = /^[\p{L}\p{Nd}_.:-]{2,30}$/u;

export function isValidSkillName(name: string): boolean {
  return SKILL_NAME_RE.test(name);
}

function checkSkill(input: SkillInput, creating: boolean): void {
  const p = new Problems();
  if (creating || input.name !== undefined) {
    p.check(
      isValidSkillName(input.name ?? ""),
      "name",
      "must be 2–30 characters: letters, digits and - _ . : only",
    );
  }
  checkText(p, "description", input.description, 500, { multiline: true });
  p.throwIfAny();
}

// skill_tenant_name_uq is not partial: an archived skill keeps its name. Renaming the
// archived skill (updateSkill works on archived ones) frees the name.
const DUPLICATE = {
  field: "name",
  message: "a skill with this name already exists (archived skills keep their names)",
};

export async function listSkills(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<Skill[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(skill)
    .where(
      and(
        eq(skill.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(skill.archivedAt),
        filter.search ? ilike(skill.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${skill.name})`), asc(skill.id))
    .limit(limit)
    .offset(offset);
}

export async function getSkill(ctx: EngineContext, viewer: Viewer, id: string): Promise<Skill> {
  const [row] = await ctx.db
    .select()
    .from(skill)
    .where(and(eq(skill.id, id), eq(skill.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("Skill", id);
  return row;
}

/** Batch load for DataLoaders: tenant-scoped, missing IDs simply absent. */
export async function skillsByIds(ctx: EngineContext, tenantId: string, ids: readonly string[]) {
  if (ids.length === 0) return [];
  return ctx.db
    .select()
    .from(skill)
    .where(and(eq(skill.tenantId, tenantId), inArray(skill.id, [...ids])));
}

export async function createSkill(ctx: EngineContext, viewer: Viewer, input: SkillInput): Promise<Skill> {
  requireRole(viewer, "ADMIN");
  checkSkill(input, true);
  try {
    const [row] = await ctx.db
      .insert(skill)
      .values({ tenantId: viewer.tenantId, name: input.name!, description: input.description ?? "" })
      .returning();
    return row!;
  } catch (err) {
    if (isUniqueViolation(err, "skill_tenant_name_uq")) throw new ValidationError(DUPLICATE);
    throw err;
  }
}

export async function updateSkill(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: SkillInput,
): Promise<Skill> {
  requireRole(viewer, "ADMIN");
  checkSkill(input, false);
  const existing = await getSkill(ctx, viewer, id);
  const set = {
    ...(input.name !== undefined ? { name: input.name } : {}),
    ...(input.description !== undefined ? { description: input.description } : {}),
  };
  if (Object.keys(set).length === 0) return existing;
  try {
    const [row] = await ctx.db
      .update(skill)
      .set(set)
      .where(and(eq(skill.id, id), eq(skill.tenantId, viewer.tenantId)))
      .returning();
    return row!;
  } catch (err) {
    if (isUniqueViolation(err, "skill_tenant_name_uq")) throw new ValidationError(DUPLICATE);
    throw err;
  }
}

/**
 * Archived, not deleted: agents' proficiencies and routing history keep referring to it.
 * An archived skill no longer appears in `User.skills` and cannot be newly assigned.
 */
export async function archiveSkill(ctx: EngineContext, viewer: Viewer, id: string): Promise<Skill> {
  requireRole(viewer, "ADMIN");
  const current = await getSkill(ctx, viewer, id);
  if (current.archivedAt) return current;
  const [row] = await ctx.db
    .update(skill)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(skill.id, id), eq(skill.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

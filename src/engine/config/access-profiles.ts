import { and, asc, count, eq, ilike, inArray, isNull, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { accessProfile, accessProfileQueue, queue, user } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { ConflictError, NotFoundError, Problems, ValidationError } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { isUniqueViolation } from "./teams.js";
import { checkName } from "./validate.js";

/** A profile with its chosen queues (empty when `allQueues`). */
export type AccessProfile = typeof accessProfile.$inferSelect & { queueIds: string[] };

export interface AccessProfileInput {
  name?: string;
  /** true: every queue of the tenant, now and future. */
  allQueues?: boolean;
  /** The chosen queues; replaces the whole set when given. */
  queueIds?: string[];
}

/** More than this many chosen queues is almost certainly a mistake for "all queues". */
const MAX_QUEUES = 500;

const DUPLICATE = { field: "name", message: "an access profile with this name already exists" };

async function checkProfile(
  db: DbOrTx,
  tenantId: string,
  input: AccessProfileInput,
  creating: boolean,
): Promise<void> {
  const p = new Problems();
  if (creating && input.name === undefined) p.add("name", "is required");
  checkName(p, "name", input.name);
  if (input.allQueues === true && input.queueIds && input.queueIds.length > 0) {
    p.add("queueIds", "must be empty when allQueues is true");
  }
  if (input.queueIds) {
    p.check(input.queueIds.length <= MAX_QUEUES, "queueIds", `at most ${MAX_QUEUES} queues`);
    const seen = new Set<string>();
    input.queueIds.forEach((id, i) => {
      if (seen.has(id)) p.add(`queueIds[${i}]`, "is listed twice");
      seen.add(id);
    });
    if (input.queueIds.length > 0 && input.queueIds.length <= MAX_QUEUES) {
      // Only this tenant's active queues: a foreign or archived queue ID is indistinguishable
      // from an unknown one, so nothing about other tenants leaks.
      const found = await db
        .select({ id: queue.id })
        .from(queue)
        .where(
          and(eq(queue.tenantId, tenantId), isNull(queue.archivedAt), inArray(queue.id, input.queueIds)),
        );
      const ok = new Set(found.map((r) => r.id));
      input.queueIds.forEach((id, i) => {
        if (!ok.has(id)) p.add(`queueIds[${i}]`, "no such queue");
      });
    }
  }
  p.throwIfAny();
}

async function withQueues(db: DbOrTx, rows: (typeof accessProfile.$inferSelect)[]): Promise<AccessProfile[]> {
  if (rows.length === 0) return [];
  const links = await db
    .select({ profileId: accessProfileQueue.accessProfileId, queueId: accessProfileQueue.queueId })
    .from(accessProfileQueue)
    .where(
      inArray(
        accessProfileQueue.accessProfileId,
        rows.map((r) => r.id),
      ),
    )
    .orderBy(asc(accessProfileQueue.createdAt), asc(accessProfileQueue.queueId));
  return rows.map((r) => ({
    ...r,
    queueIds: links.filter((l) => l.profileId === r.id).map((l) => l.queueId),
  }));
}

export async function listAccessProfiles(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<AccessProfile[]> {
  requireRole(viewer, "ADMIN", "SUPERVISOR");
  const { limit, offset } = clampPage(page);
  const rows = await ctx.db
    .select()
    .from(accessProfile)
    .where(
      and(
        eq(accessProfile.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(accessProfile.archivedAt),
        filter.search ? ilike(accessProfile.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${accessProfile.name})`), asc(accessProfile.id))
    .limit(limit)
    .offset(offset);
  return withQueues(ctx.db, rows);
}

export async function getAccessProfile(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  db: DbOrTx = ctx.db,
): Promise<AccessProfile> {
  // Agents never learn profiles other than their own.
  const [row] = await db
    .select()
    .from(accessProfile)
    .where(and(eq(accessProfile.id, id), eq(accessProfile.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("AccessProfile", id);
  if (viewer.role === "AGENT") {
    const [self] = await db
      .select({ id: user.id })
      .from(user)
      .where(and(eq(user.id, viewer.userId), eq(user.accessProfileId, id)));
    if (!self) throw new NotFoundError("AccessProfile", id);
  }
  const [full] = await withQueues(db, [row]);
  return full!;
}

async function replaceQueues(db: DbOrTx, tenantId: string, profileId: string, queueIds: string[]) {
  await db.delete(accessProfileQueue).where(eq(accessProfileQueue.accessProfileId, profileId));
  if (queueIds.length > 0) {
    await db
      .insert(accessProfileQueue)
      .values(queueIds.map((queueId) => ({ tenantId, accessProfileId: profileId, queueId })));
  }
}

export async function createAccessProfile(
  ctx: EngineContext,
  viewer: Viewer,
  input: AccessProfileInput,
): Promise<AccessProfile> {
  requireRole(viewer, "ADMIN");
  await checkProfile(ctx.db, viewer.tenantId, input, true);
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(accessProfile)
        .values({ tenantId: viewer.tenantId, name: input.name!.trim(), allQueues: input.allQueues ?? false })
        .returning();
      await replaceQueues(tx, viewer.tenantId, row!.id, input.allQueues ? [] : (input.queueIds ?? []));
      return getAccessProfile(ctx, viewer, row!.id, tx);
    });
  } catch (err) {
    if (isUniqueViolation(err, "access_profile_tenant_name_uq")) throw new ValidationError(DUPLICATE);
    throw err;
  }
}

export async function updateAccessProfile(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: AccessProfileInput,
): Promise<AccessProfile> {
  requireRole(viewer, "ADMIN");
  await getAccessProfile(ctx, viewer, id);
  await checkProfile(ctx.db, viewer.tenantId, input, false);
  try {
    return await ctx.db.transaction(async (tx) => {
      await tx
        .update(accessProfile)
        .set({
          ...(input.name !== undefined ? { name: input.name.trim() } : {}),
          ...(input.allQueues !== undefined ? { allQueues: input.allQueues } : {}),
          updatedAt: ctx.clock.now(),
        })
        .where(and(eq(accessProfile.id, id), eq(accessProfile.tenantId, viewer.tenantId)));
      // Switching to all queues drops the chosen set so a later switch back starts clean.
      if (input.allQueues === true) await replaceQueues(tx, viewer.tenantId, id, []);
      else if (input.queueIds !== undefined) await replaceQueues(tx, viewer.tenantId, id, input.queueIds);
      return getAccessProfile(ctx, viewer, id, tx);
    });
  } catch (err) {
    if (isUniqueViolation(err, "access_profile_tenant_name_uq")) throw new ValidationError(DUPLICATE);
    throw err;
  }
}

/**
 * Refused while active users hold the profile: visibility is computed from it, and an
 * archived profile silently widening or narrowing someone's queues would be a surprise.
 */
export async function archiveAccessProfile(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<AccessProfile> {
  requireRole(viewer, "ADMIN");
  const current = await getAccessProfile(ctx, viewer, id);
  if (current.archivedAt) return current;
  const [holders] = await ctx.db
    .select({ n: count() })
    .from(user)
    .where(and(eq(user.accessProfileId, id), eq(user.tenantId, viewer.tenantId), isNull(user.archivedAt)));
  if ((holders?.n ?? 0) > 0) {
    throw new ConflictError(
      `${holders!.n} active user(s) still hold this access profile; assign them another one first`,
      "IN_USE",
    );
  }
  await ctx.db
    .update(accessProfile)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(accessProfile.id, id), eq(accessProfile.tenantId, viewer.tenantId)));
  return getAccessProfile(ctx, viewer, id);
}

/** Batch load for User.accessProfile: tenant-scoped, with queues; missing IDs are absent. */
export async function accessProfilesByIds(
  ctx: EngineContext,
  tenantId: string,
  ids: readonly string[],
): Promise<AccessProfile[]> {
  if (ids.length === 0) return [];
  const rows = await ctx.db
    .select()
    .from(accessProfile)
    .where(and(eq(accessProfile.tenantId, tenantId), inArray(accessProfile.id, [...ids])));
  return withQueues(ctx.db, rows);
}

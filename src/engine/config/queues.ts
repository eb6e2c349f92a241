import { and, asc, eq, ilike, inArray, isNull, or, sql } from "drizzle-orm";
import type { DbOrTx, Tx } from "../../db/client.js";
import {
  autoReplyTemplate,
  businessCalendar,
  emailAddress,
  mailAccount,
  queue,
  queueAddress,
  queueMember,
  signature,
  slaPolicy,
  team,
  user,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import {
  PRESENCES,
  type PreferredAgentMode,
  type Presence,
  type QueueOrder,
  type RoutingStrategy,
} from "../domain.js";
import { ConflictError, NotFoundError, Problems, ValidationError } from "../errors.js";
import { canSeeQueue, requireRole, type Viewer } from "../viewer.js";
import type { EmailAddress } from "./email-addresses.js";
import { PRIORITY_MAX, PRIORITY_MIN } from "./email-addresses.js";
import { clampPage, type Page } from "./paging.js";
import { checkRefs } from "./refs.js";
import { likePattern } from "./search.js";
import { isUniqueViolation, type Team } from "./teams.js";
import { checkIntRange, checkName, checkText, hasChanges } from "./validate.js";

export type Queue = typeof queue.$inferSelect;
export type QueueUser = typeof user.$inferSelect;

/** Every setting of a queue (SPEC §2, §8, §9). On update, `undefined` = unchanged. */
export interface QueueInput {
  name?: string;
  description?: string;
  calendarId?: string | null;
  defaultAddressId?: string | null;
  strategy?: RoutingStrategy;
  preferredAgentMode?: PreferredAgentMode;
  preferredAgentTimeoutSeconds?: number;
  order?: QueueOrder;
  defaultPriority?: number;
  autoAssign?: boolean;
  dailyAutoAssignLimit?: number | null;
  autoAssignOnlyInBusinessHours?: boolean;
  autoAssignOnlyLoggedIn?: boolean;
  routablePresences?: Presence[];
  offerRequired?: boolean;
  offerTimeoutSeconds?: number;
  manualParkingAllowed?: boolean;
  autoParking?: boolean;
  autoParkSpacingSeconds?: number;
  presentNextWhenAllParked?: boolean;
  customerResponseCountdownMinutes?: number | null;
  slaPolicyId?: string | null;
  signatureId?: string | null;
  autoReplyTemplateId?: string | null;
  autoReplyOnNew?: boolean;
  autoReplyOnClosed?: boolean;
  autoReplyOnPaused?: boolean;
  autoReplyOnIdle?: boolean;
  autoReplyIdleDays?: number;
  autoReplyAddressId?: string | null;
}

/** Limits from SPEC §8/§9 (preferred-agent timeout 1–5,256,000 s = 61 days). */
export const QUEUE_LIMITS = {
  preferredAgentTimeoutSeconds: [1, 5_256_000],
  offerTimeoutSeconds: [5, 86_400],
  autoParkSpacingSeconds: [0, 3_600],
  customerResponseCountdownMinutes: [1, 525_600],
  autoReplyIdleDays: [1, 365],
  dailyAutoAssignLimit: [1, 100_000],
  defaultPriority: [PRIORITY_MIN, PRIORITY_MAX],
} as const satisfies Record<string, readonly [number, number]>;

function checkShape(input: QueueInput, current: Queue | null): Problems {
  const p = new Problems();
  if (!current && input.name === undefined) p.add("name", "is required");
  checkName(p, "name", input.name);
  checkText(p, "description", input.description, 2000, { multiline: true });
  for (const [field, [min, max]] of Object.entries(QUEUE_LIMITS)) {
    checkIntRange(p, field, input[field as keyof typeof QUEUE_LIMITS], min, max);
  }
  if (input.routablePresences !== undefined) {
    p.check(input.routablePresences.length > 0, "routablePresences", "must name at least one presence");
    p.check(
      input.routablePresences.every((x) => (PRESENCES as readonly string[]).includes(x)),
      "routablePresences",
      `must be among ${PRESENCES.join(", ")}`,
    );
  }
  const calendarId = input.calendarId !== undefined ? input.calendarId : (current?.calendarId ?? null);
  const onlyInHours = input.autoAssignOnlyInBusinessHours ?? current?.autoAssignOnlyInBusinessHours ?? false;
  if (onlyInHours && !calendarId) {
    p.add(
      input.autoAssignOnlyInBusinessHours !== undefined ? "autoAssignOnlyInBusinessHours" : "calendarId",
      "auto-assignment only in business hours needs a business-hours calendar",
    );
  }
  const anyAutoReply = (
    ["autoReplyOnNew", "autoReplyOnClosed", "autoReplyOnPaused", "autoReplyOnIdle"] as const
  ).some((f) => input[f] ?? current?.[f] ?? false);
  const template =
    input.autoReplyTemplateId !== undefined
      ? input.autoReplyTemplateId
      : (current?.autoReplyTemplateId ?? null);
  if (anyAutoReply && !template)
    p.add("autoReplyTemplateId", "is required while an auto-reply is switched on");
  return p;
}

async function checkReferences(tx: Tx, viewer: Viewer, input: QueueInput, p: Problems): Promise<void> {
  await checkRefs(tx, viewer.tenantId, p, [
    { field: "calendarId", table: businessCalendar, id: input.calendarId, what: "business calendar" },
    { field: "slaPolicyId", table: slaPolicy, id: input.slaPolicyId, what: "SLA policy" },
    { field: "signatureId", table: signature, id: input.signatureId, what: "signature" },
    {
      field: "autoReplyTemplateId",
      table: autoReplyTemplate,
      id: input.autoReplyTemplateId,
      what: "auto-reply template",
    },
    { field: "autoReplyAddressId", table: emailAddress, id: input.autoReplyAddressId, what: "email address" },
    { field: "defaultAddressId", table: emailAddress, id: input.defaultAddressId, what: "email address" },
  ]);
  if (input.defaultAddressId) {
    // SPEC §2: an outbound-only account's address may send auto-replies but cannot be the default address.
    const [acc] = await tx
      .select({ kind: mailAccount.kind })
      .from(emailAddress)
      .innerJoin(mailAccount, eq(mailAccount.id, emailAddress.accountId))
      .where(and(eq(emailAddress.id, input.defaultAddressId), eq(emailAddress.tenantId, viewer.tenantId)))
      // FOR SHARE pairs with the FOR UPDATE in updateMailAccount/updateEmailAddress: a concurrent
      // switch to outbound-only either waits for this commit (and then sees the queue) or is seen here.
      .for("share");
    if (acc?.kind === "OUTBOUND_ONLY")
      p.add(
        "defaultAddressId",
        "belongs to an outbound-only account, which cannot be a queue's default address",
      );
  }
}

function columns(input: QueueInput) {
  return {
    ...input,
    name: input.name?.trim(),
    routablePresences: input.routablePresences ? [...new Set(input.routablePresences)] : undefined,
  };
}

function nameTaken(err: unknown): never {
  if (isUniqueViolation(err, "queue_tenant_name_uq"))
    throw new ValidationError({ field: "name", message: "an active queue with this name already exists" });
  throw err;
}

/** Queues the viewer may see (access profile / membership, SPEC §1), ordered by name. */
export async function listQueues(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<Queue[]> {
  const { limit, offset } = clampPage(page);
  if (viewer.queueIds !== null && viewer.queueIds.size === 0) return [];
  return ctx.db
    .select()
    .from(queue)
    .where(
      and(
        eq(queue.tenantId, viewer.tenantId),
        viewer.queueIds === null ? undefined : inArray(queue.id, [...viewer.queueIds]),
        filter.includeArchived ? undefined : isNull(queue.archivedAt),
        filter.search ? ilike(queue.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${queue.name})`), asc(queue.id))
    .limit(limit)
    .offset(offset);
}

/**
 * `lock`: "update" for the archive, which must wait for ingests in flight (they key-share
 * the queue rows they read, docs/ingest.md); "no key update" for edits, which need not.
 */
async function findQueue(
  db: DbOrTx,
  viewer: Viewer,
  id: string,
  lock?: "update" | "no key update",
): Promise<Queue> {
  // A queue outside the viewer's set is indistinguishable from a missing one.
  if (!canSeeQueue(viewer, id)) throw new NotFoundError("Queue", id);
  const q = db
    .select()
    .from(queue)
    .where(and(eq(queue.id, id), eq(queue.tenantId, viewer.tenantId)));
  const [row] = lock ? await q.for(lock) : await q;
  if (!row) throw new NotFoundError("Queue", id);
  return row;
}

export async function getQueue(ctx: EngineContext, viewer: Viewer, id: string): Promise<Queue> {
  return findQueue(ctx.db, viewer, id);
}

/** Batch load for references (an address's routing queue): visible queues only, aligned with `ids`. */
export async function loadQueues(
  ctx: EngineContext,
  viewer: Viewer,
  ids: readonly string[],
): Promise<(Queue | null)[]> {
  const visible = ids.filter((id) => canSeeQueue(viewer, id));
  if (visible.length === 0) return ids.map(() => null);
  const rows = await ctx.db
    .select()
    .from(queue)
    .where(and(eq(queue.tenantId, viewer.tenantId), inArray(queue.id, visible)));
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => byId.get(id) ?? null);
}

export async function createQueue(ctx: EngineContext, viewer: Viewer, input: QueueInput): Promise<Queue> {
  requireRole(viewer, "ADMIN");
  const p = checkShape(input, null);
  try {
    return await ctx.db.transaction(async (tx) => {
      await checkReferences(tx, viewer, input, p);
      p.throwIfAny();
      const values = columns(input);
      const [row] = await tx
        .insert(queue)
        .values({ ...values, tenantId: viewer.tenantId, name: values.name! })
        .returning();
      return row!;
    });
  } catch (err) {
    return nameTaken(err);
  }
}

export async function updateQueue(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: QueueInput,
): Promise<Queue> {
  requireRole(viewer, "ADMIN");
  let updated: Queue;
  let changed = false;
  try {
    updated = await ctx.db.transaction(async (tx) => {
      const current = await findQueue(tx, viewer, id, "no key update");
      const p = checkShape(input, current);
      await checkReferences(tx, viewer, input, p);
      p.throwIfAny();
      const values = columns(input);
      if (!hasChanges(values)) return current;
      changed = true;
      const [row] = await tx
        .update(queue)
        .set(values)
        .where(and(eq(queue.id, id), eq(queue.tenantId, viewer.tenantId)))
        .returning();
      return row!;
    });
  } catch (err) {
    return nameTaken(err);
  }
  // Settings such as autoAssign, presences or the daily limit change who is eligible: re-route after commit.
  if (changed) ctx.signals.routeQueue(viewer.tenantId, id);
  return updated;
}

/**
 * Archived, not deleted: conversations and history keep their queue; the name becomes free
 * again. Refused (ConflictError, code QUEUE_IN_USE) while the queue still has work to
 * route: an address whose mail (or spam) it receives — new mail would land in no queue —
 * or conversations waiting in it, which routing would never offer again. The message
 * names them, so the admin knows what to move first.
 */
export async function archiveQueue(ctx: EngineContext, viewer: Viewer, id: string): Promise<Queue> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    await findQueue(tx, viewer, id, "update");
    // Open work of every kind, not only waiting: an offer rejected or expired, or work an
    // agent returns, goes back to WAITING in its queue (re-probe, session 17: all three put
    // conversations WAITING into a queue archived while they were offered or worked on).
    const [use] = await tx.execute<{ addresses: string[] | null; waiting: number; working: number }>(sql`
      SELECT (SELECT array_agg(a.address ORDER BY a.address) FROM email_address a
               WHERE a.tenant_id = ${viewer.tenantId} AND a.archived_at IS NULL
                 AND (a.queue_id = ${id} OR a.spam_queue_id = ${id})) AS addresses,
             (SELECT count(*) FILTER (WHERE c.work_state = 'WAITING')::int FROM conversation c
               WHERE c.tenant_id = ${viewer.tenantId} AND c.queue_id = ${id}
                 AND c.work_state <> 'DONE') AS waiting,
             (SELECT count(*) FILTER (WHERE c.work_state <> 'WAITING')::int FROM conversation c
               WHERE c.tenant_id = ${viewer.tenantId} AND c.queue_id = ${id}
                 AND c.work_state <> 'DONE') AS working`);
    const reasons: string[] = [];
    const addresses = use?.addresses ?? [];
    if (addresses.length > 0) {
      reasons.push(
        `it receives the mail of ${addresses.slice(0, 10).join(", ")}${addresses.length > 10 ? ` and ${addresses.length - 10} more` : ""}`,
      );
    }
    if ((use?.waiting ?? 0) > 0) reasons.push(`${use!.waiting} conversation(s) are waiting in it`);
    if ((use?.working ?? 0) > 0) {
      reasons.push(`${use!.working} conversation(s) in it are offered to or worked on by agents`);
    }
    if (reasons.length > 0) {
      throw new ConflictError(`queue still in use: ${reasons.join("; ")} — move them first`, "QUEUE_IN_USE");
    }
    const [row] = await tx
      .update(queue)
      .set({ archivedAt: ctx.clock.now() })
      .where(and(eq(queue.id, id), eq(queue.tenantId, viewer.tenantId)))
      .returning();
    return row!;
  });
}

async function checkMembers(
  tx: Tx,
  tenantId: string,
  userIds: readonly string[],
  teamIds: readonly string[],
): Promise<void> {
  const p = new Problems();
  await checkRefs(tx, tenantId, p, [
    ...userIds.map((id, i) => ({ field: `userIds[${i}]`, table: user, id, what: "user" })),
    ...teamIds.map((id, i) => ({ field: `teamIds[${i}]`, table: team, id, what: "team" })),
  ]);
  p.throwIfAny();
}

/** Adds agents and/or whole teams; members already there are left as they are (idempotent). */
export async function addQueueMembers(
  ctx: EngineContext,
  viewer: Viewer,
  queueId: string,
  userIds: readonly string[],
  teamIds: readonly string[],
): Promise<Queue> {
  requireRole(viewer, "ADMIN");
  const q = await ctx.db.transaction(async (tx) => {
    const q = await findQueue(tx, viewer, queueId, "no key update");
    await checkMembers(tx, viewer.tenantId, userIds, teamIds);
    const rows = [
      ...[...new Set(userIds)].map((userId) => ({ tenantId: viewer.tenantId, queueId, userId })),
      ...[...new Set(teamIds)].map((teamId) => ({ tenantId: viewer.tenantId, queueId, teamId })),
    ];
    // The partial unique indexes (queue_member_user_uq / _team_uq) make repeats a no-op.
    if (rows.length > 0) await tx.insert(queueMember).values(rows).onConflictDoNothing();
    return q;
  });
  // New members are new supply: let routing look at the queue.
  ctx.signals.routeQueue(viewer.tenantId, queueId);
  return q;
}

/** Removes agents and/or teams; IDs that are not members are ignored. */
export async function removeQueueMembers(
  ctx: EngineContext,
  viewer: Viewer,
  queueId: string,
  userIds: readonly string[],
  teamIds: readonly string[],
): Promise<Queue> {
  requireRole(viewer, "ADMIN");
  const q = await findQueue(ctx.db, viewer, queueId);
  if (userIds.length > 0 || teamIds.length > 0) {
    await ctx.db
      .delete(queueMember)
      .where(
        and(
          eq(queueMember.tenantId, viewer.tenantId),
          eq(queueMember.queueId, queueId),
          or(
            userIds.length > 0 ? inArray(queueMember.userId, [...userIds]) : sql`false`,
            teamIds.length > 0 ? inArray(queueMember.teamId, [...teamIds]) : sql`false`,
          ),
        ),
      );
  }
  return q;
}

/** Replaces the queue's address set (used inbound and outbound, SPEC §2). */
export async function setQueueAddresses(
  ctx: EngineContext,
  viewer: Viewer,
  queueId: string,
  addressIds: readonly string[],
): Promise<Queue> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    const q = await findQueue(tx, viewer, queueId, "no key update");
    const ids = [...new Set(addressIds)];
    const p = new Problems();
    await checkRefs(
      tx,
      viewer.tenantId,
      p,
      addressIds.map((id, i) => ({
        field: `addressIds[${i}]`,
        table: emailAddress,
        id,
        what: "email address",
      })),
    );
    p.throwIfAny();
    await tx
      .delete(queueAddress)
      .where(and(eq(queueAddress.tenantId, viewer.tenantId), eq(queueAddress.queueId, queueId)));
    if (ids.length > 0)
      await tx
        .insert(queueAddress)
        .values(ids.map((addressId) => ({ tenantId: viewer.tenantId, queueId, addressId })));
    return q;
  });
}

export interface QueueMembers {
  agents: QueueUser[];
  teams: Team[];
}

/** Batch load of members for DataLoaders: two queries for any number of queues; archived users/teams left out. */
export async function loadQueueMembers(
  ctx: EngineContext,
  tenantId: string,
  queueIds: readonly string[],
): Promise<QueueMembers[]> {
  const ids = [...queueIds];
  const [users, teams] = await Promise.all([
    ctx.db
      .select({ queueId: queueMember.queueId, u: user })
      .from(queueMember)
      .innerJoin(user, eq(user.id, queueMember.userId))
      .where(
        and(eq(queueMember.tenantId, tenantId), inArray(queueMember.queueId, ids), isNull(user.archivedAt)),
      )
      .orderBy(asc(sql`lower(${user.name})`), asc(user.id)),
    ctx.db
      .select({ queueId: queueMember.queueId, t: team })
      .from(queueMember)
      .innerJoin(team, eq(team.id, queueMember.teamId))
      .where(
        and(eq(queueMember.tenantId, tenantId), inArray(queueMember.queueId, ids), isNull(team.archivedAt)),
      )
      .orderBy(asc(sql`lower(${team.name})`), asc(team.id)),
  ]);
  return ids.map((id) => ({
    agents: users.filter((r) => r.queueId === id).map((r) => r.u),
    teams: teams.filter((r) => r.queueId === id).map((r) => r.t),
  }));
}

/** Batch load of each queue's active addresses, ordered by address. */
export async function loadQueueAddresses(
  ctx: EngineContext,
  tenantId: string,
  queueIds: readonly string[],
): Promise<EmailAddress[][]> {
  const ids = [...queueIds];
  const rows = await ctx.db
    .select({ queueId: queueAddress.queueId, a: emailAddress })
    .from(queueAddress)
    .innerJoin(emailAddress, eq(emailAddress.id, queueAddress.addressId))
    .where(
      and(
        eq(queueAddress.tenantId, tenantId),
        inArray(queueAddress.queueId, ids),
        isNull(emailAddress.archivedAt),
      ),
    )
    .orderBy(asc(sql`lower(${emailAddress.address})`));
  return ids.map((id) => rows.filter((r) => r.queueId === id).map((r) => r.a));
}

import { and, eq, inArray, isNotNull, isNull, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../db/client.js";
import { accessProfile, accessProfileQueue, queue, queueMember, user } from "../db/schema/index.js";
import type { Permission, Role } from "./domain.js";
import { ForbiddenError } from "./errors.js";

/** Who is calling: resolved once per request/connection from the API key. */
export interface Viewer {
  tenantId: string;
  userId: string;
  role: Role;
  permissions: ReadonlySet<Permission>;
  /** Queues this viewer may see; null = every queue of the tenant. */
  queueIds: ReadonlySet<string> | null;
}

export function requireRole(viewer: Viewer, ...roles: Role[]): void {
  if (!roles.includes(viewer.role)) {
    throw new ForbiddenError(`This action requires the role ${roles.join(" or ")}`);
  }
}

export function requirePermission(viewer: Viewer, permission: Permission): void {
  if (!viewer.permissions.has(permission)) {
    throw new ForbiddenError(`Your role lacks the permission ${permission}`, permission);
  }
}

export function canSeeQueue(viewer: Viewer, queueId: string | null): boolean {
  // A conversation outside every queue (unrouted) is visible only to those who see every
  // queue: admins and unrestricted supervisors — as `visibility()` (conversations.ts) reads
  // it. (An agent never sees every queue: its set is its memberships.)
  if (viewer.queueIds === null) return true;
  if (queueId === null) return false;
  return viewer.queueIds.has(queueId);
}

/**
 * The queues a user may see (SPEC §1 access profiles). ADMIN: all. With an access profile:
 * all or the profile's set. Without one: supervisors all, agents the queues they are a
 * member of, directly or through their team.
 */
export async function visibleQueueIds(
  db: DbOrTx,
  u: { id: string; tenantId: string; role: Role; accessProfileId: string | null; teamId: string | null },
): Promise<Set<string> | null> {
  if (u.role === "ADMIN") return null;
  if (u.accessProfileId) {
    const [profile] = await db
      .select({ allQueues: accessProfile.allQueues })
      .from(accessProfile)
      .where(and(eq(accessProfile.id, u.accessProfileId), eq(accessProfile.tenantId, u.tenantId)));
    if (profile?.allQueues) return null;
    const rows = await db
      .select({ queueId: accessProfileQueue.queueId })
      .from(accessProfileQueue)
      .where(eq(accessProfileQueue.accessProfileId, u.accessProfileId));
    return new Set(rows.map((r) => r.queueId));
  }
  if (u.role === "SUPERVISOR") return null;
  const rows = await db
    .selectDistinct({ queueId: queueMember.queueId })
    .from(queueMember)
    .innerJoin(queue, eq(queue.id, queueMember.queueId))
    .where(
      and(
        eq(queueMember.tenantId, u.tenantId),
        isNull(queue.archivedAt),
        or(eq(queueMember.userId, u.id), u.teamId ? eq(queueMember.teamId, u.teamId) : sql`false`),
      ),
    );
  return new Set(rows.map((r) => r.queueId));
}

export async function loadViewer(
  db: DbOrTx,
  userId: string,
  rolePermissions: Record<Role, Permission[]>,
): Promise<Viewer | null> {
  const [u] = await db
    .select()
    .from(user)
    .where(and(eq(user.id, userId), isNull(user.archivedAt)));
  if (!u) return null;
  return {
    tenantId: u.tenantId,
    userId: u.id,
    role: u.role,
    permissions: new Set(rolePermissions[u.role] ?? []),
    queueIds: await visibleQueueIds(db, u),
  };
}

export function queueFilterIds(viewer: Viewer, requested?: string[] | null): string[] | null {
  if (viewer.queueIds === null) return requested ?? null;
  const allowed = [...viewer.queueIds];
  return requested ? requested.filter((id) => viewer.queueIds?.has(id)) : allowed;
}

/**
 * The agents of some queues: members directly or through their team (what a supervisor
 * limited to those queues may follow in the tenant stream, e.g. their presence).
 */
export async function agentsOfQueues(
  db: DbOrTx,
  tenantId: string,
  queueIds: readonly string[],
): Promise<Set<string>> {
  if (queueIds.length === 0) return new Set();
  const rows = await db
    .selectDistinct({ id: user.id })
    .from(user)
    .innerJoin(
      queueMember,
      and(
        eq(queueMember.tenantId, tenantId),
        inArray(queueMember.queueId, [...queueIds]),
        or(eq(queueMember.userId, user.id), and(isNotNull(user.teamId), eq(queueMember.teamId, user.teamId))),
      ),
    )
    .where(eq(user.tenantId, tenantId));
  return new Set(rows.map((r) => r.id));
}

/**
 * Events about what only admins may read: rejected mail (its sender, subject and reason),
 * its release, and retention's purges.
 */
const ADMIN_EVENTS = new Set(["message.rejected", "message.released", "retention.purged"]);

/**
 * Whether the tenant stream shows an event: admin-only events to admins; the rest by its
 * queue. An event without a queue is about work outside every queue (unrouted) or about
 * the tenant, and only those who see every queue get it.
 */
export function canSeeEvent(
  viewer: Viewer,
  e: { type: string; queueId: string | null; conversationId: string | null; agentId: string | null },
  agents: ReadonlySet<string> | null,
): boolean {
  if (ADMIN_EVENTS.has(e.type)) return viewer.role === "ADMIN";
  if (canSeeQueue(viewer, e.queueId)) return true;
  // About an agent of the caller's queues and no conversation (presence, an interruption
  // with nothing parked): what a supervisor follows about its own agents.
  return e.queueId === null && e.conversationId === null && e.agentId !== null && !!agents?.has(e.agentId);
}

import { and, eq, isNull, or, sql } from "drizzle-orm";
import { type DbOrTx, rawClient, type Tx } from "../../db/client.js";
import { agentState, contact, conversation, queue, queueMember, skill, user } from "../../db/schema/index.js";
import { checkRefs } from "../config/refs.js";
import { checkText } from "../config/validate.js";
import type { EngineContext } from "../context.js";
import type { Conversation } from "../conversations.js";
import type { Presence } from "../domain.js";
import { ConflictError, ForbiddenError, NotFoundError, Problems, ValidationError } from "../errors.js";
import { appendEvents, type NewEvent } from "../events.js";
import { isLiveQueue } from "../live-queues.js";
import { canSeeQueue, requirePermission, type Viewer } from "../viewer.js";
import { lockTenantRouting, ROUTING_JOBS } from "./service.js";

/**
 * Agent and supervisor actions around routing (SPEC §8 working set, offers, moves).
 *
 * Locking: every action locks the conversation row first (`FOR NO KEY UPDATE`: strong
 * enough against every other writer of the row, yet it does not block the KEY SHARE locks
 * foreign-key checks take, e.g. a message inserted for the conversation) and checks its
 * state, then, when it may make a conversation ACTIVE, the agent's `agent_state` row, so
 * two actions cannot give one agent two ACTIVE conversations. Actions that add load to an
 * agent or take a WAITING conversation (pick, assign) first take the tenant routing lock,
 * like a routing pass, so capacity decisions never interleave. Illegal transitions throw
 * ConflictError (a typed result in the API). Routing for the affected queues is signalled
 * after commit, never inside the transaction.
 */

type Row = Conversation;

const isSupervisor = (v: Viewer) => v.role === "ADMIN" || v.role === "SUPERVISOR";

interface After {
  queues: Set<string>;
}

async function run<T>(
  ctx: EngineContext,
  tenantId: string,
  body: (tx: Tx, after: After) => Promise<T>,
): Promise<T> {
  const after: After = { queues: new Set() };
  const out = await ctx.db.transaction((tx) => body(tx, after));
  for (const q of after.queues) ctx.signals.routeQueue(tenantId, q);
  ctx.hub.wake();
  return out;
}

async function lockConversation(tx: DbOrTx, tenantId: string, id: string): Promise<Row> {
  const [row] = await tx
    .select()
    .from(conversation)
    .where(and(eq(conversation.id, id), eq(conversation.tenantId, tenantId)))
    .for("no key update");
  if (!row) throw new NotFoundError("Conversation", id);
  return row;
}

/** Visible to the viewer: its queues, or anything it owns or is offered. */
function checkVisible(viewer: Viewer, c: Row): void {
  if (c.assigneeId === viewer.userId || c.offeredToId === viewer.userId) return;
  if (!canSeeQueue(viewer, c.queueId)) throw new NotFoundError("Conversation", c.id);
}

async function lockAgent(tx: DbOrTx, tenantId: string, agentId: string) {
  await tx.insert(agentState).values({ userId: agentId, tenantId }).onConflictDoNothing();
  const [row] = await tx.select().from(agentState).where(eq(agentState.userId, agentId)).for("no key update");
  return row!;
}

async function activeOf(tx: DbOrTx, agentId: string): Promise<Row | undefined> {
  const [row] = await tx
    .select()
    .from(conversation)
    .where(and(eq(conversation.assigneeId, agentId), eq(conversation.workState, "ACTIVE")))
    .for("no key update");
  return row;
}

function elapsed(since: Date | null, now: Date): number {
  return since === null ? 0 : Math.max(0, now.getTime() - since.getTime());
}

/** Parks the agent's ACTIVE conversation (if any, and not `except`), storing its handle time. */
async function parkActive(
  tx: DbOrTx,
  tenantId: string,
  agentId: string,
  now: Date,
  reason: string,
  events: NewEvent[],
  except?: string,
): Promise<string | null> {
  const active = await activeOf(tx, agentId);
  if (!active || active.id === except) return null;
  const sessionMs = elapsed(active.activeSince, now);
  await tx
    .update(conversation)
    .set({
      workState: "PARKED",
      handleTimeMs: active.handleTimeMs + sessionMs,
      activeSince: null,
      updatedAt: now,
    })
    .where(eq(conversation.id, active.id));
  events.push({
    tenantId,
    type: "routing.parked",
    conversationId: active.id,
    queueId: active.queueId,
    agentId,
    occurredAt: now,
    payload: { reason, sessionMs, handleTimeMs: active.handleTimeMs + sessionMs },
  });
  return active.id;
}

async function reload(tx: DbOrTx, id: string): Promise<Row> {
  const [row] = await tx.select().from(conversation).where(eq(conversation.id, id));
  return row!;
}

/** Accept a pending offer: it becomes the agent's (ACTIVE when nothing else is, else PARKED). */
export async function acceptOffer(ctx: EngineContext, viewer: Viewer, conversationId: string): Promise<Row> {
  return run(ctx, viewer.tenantId, async (tx) => {
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    if (c.workState !== "OFFERED" || c.offeredToId !== viewer.userId) {
      throw new ConflictError("This conversation is not offered to you", "OFFER_NOT_PENDING");
    }
    if (c.offerExpiresAt && c.offerExpiresAt <= now) {
      throw new ConflictError("The offer has expired", "OFFER_EXPIRED");
    }
    const st = await lockAgent(tx, viewer.tenantId, viewer.userId);
    const active = await activeOf(tx, viewer.userId);
    const activate = !active && st.interruptedAt === null;
    await tx
      .update(conversation)
      .set({
        workState: activate ? "ACTIVE" : "PARKED",
        assigneeId: viewer.userId,
        assignedAt: now,
        activeSince: activate ? now : null,
        offeredToId: null,
        offerExpiresAt: null,
        lastActivityAt: now,
        updatedAt: now,
      })
      .where(eq(conversation.id, c.id));
    await tx
      .update(contact)
      .set({ preferredAgentId: viewer.userId, preferredAgentAt: now })
      .where(eq(contact.id, c.contactId));
    await tx
      .update(agentState)
      .set({ lastAssignedAt: now, updatedAt: now })
      .where(eq(agentState.userId, viewer.userId));
    await appendEvents(tx, [
      {
        tenantId: viewer.tenantId,
        type: "routing.accepted",
        conversationId: c.id,
        queueId: c.queueId,
        agentId: viewer.userId,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: now,
        payload: { workState: activate ? "ACTIVE" : "PARKED" },
      },
    ]);
    return reload(tx, c.id);
  });
}

/** Returns an OFFERED conversation to the queue and excludes `agentId` from it. */
async function returnOffer(
  tx: DbOrTx,
  c: Row,
  agentId: string,
  now: Date,
  type: "routing.rejected" | "routing.offer_expired",
  actor: string | null,
): Promise<void> {
  await tx
    .update(conversation)
    .set({
      workState: "WAITING",
      offeredToId: null,
      offerExpiresAt: null,
      offerExcludedIds: sql`array_append(array_remove(${conversation.offerExcludedIds}, ${agentId}::uuid), ${agentId}::uuid)`,
      updatedAt: now,
    })
    .where(eq(conversation.id, c.id));
  await appendEvents(tx, [
    {
      tenantId: c.tenantId,
      type,
      conversationId: c.id,
      queueId: c.queueId,
      agentId,
      actorType: actor ? "USER" : "SYSTEM",
      actorId: actor,
      occurredAt: now,
      payload: {},
    },
  ]);
}

/** Reject a pending offer: back to the queue, and the next routing pass skips this agent. */
export async function rejectOffer(ctx: EngineContext, viewer: Viewer, conversationId: string): Promise<Row> {
  return run(ctx, viewer.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    if (c.workState !== "OFFERED" || c.offeredToId !== viewer.userId) {
      throw new ConflictError("This conversation is not offered to you", "OFFER_NOT_PENDING");
    }
    await returnOffer(tx, c, viewer.userId, now, "routing.rejected", viewer.userId);
    if (c.queueId) after.queues.add(c.queueId);
    return reload(tx, c.id);
  });
}

/**
 * Offer-timeout job: re-checked against the row, so a stale timer (offer accepted,
 * rejected or re-offered since) does nothing.
 */
export async function expireOffer(
  ctx: EngineContext,
  data: { tenantId: string; conversationId: string; agentId: string },
): Promise<boolean> {
  return run(ctx, data.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const [c] = await tx
      .select()
      .from(conversation)
      .where(and(eq(conversation.id, data.conversationId), eq(conversation.tenantId, data.tenantId)))
      .for("no key update");
    if (c?.workState !== "OFFERED" || c.offeredToId !== data.agentId) return false;
    if (!c.offerExpiresAt || c.offerExpiresAt > now) return false;
    await returnOffer(tx, c, data.agentId, now, "routing.offer_expired", null);
    if (c.queueId) after.queues.add(c.queueId);
    return true;
  });
}

/**
 * Offer-timeout job for one routing pass: every offer a pass makes shares one deadline,
 * so one job per (queue, deadline) expires them with one set-based UPDATE. Re-checked
 * against the rows: offers accepted, rejected or re-offered since are untouched.
 */
export async function expireOffers(
  ctx: EngineContext,
  data: { tenantId: string; queueId: string },
): Promise<number> {
  return run(ctx, data.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const sql = rawClient(tx);
    const rows = await sql<{ id: string; agent_id: string }[]>`
      WITH due AS (
        SELECT id, offered_to_id FROM conversation
        WHERE tenant_id = ${data.tenantId} AND queue_id = ${data.queueId} AND work_state = 'OFFERED'
          AND offer_expires_at <= ${now.toISOString()}::timestamptz
        FOR NO KEY UPDATE
      )
      UPDATE conversation c SET work_state = 'WAITING', offered_to_id = NULL, offer_expires_at = NULL,
        offer_excluded_ids = array_append(array_remove(c.offer_excluded_ids, due.offered_to_id), due.offered_to_id),
        updated_at = ${now.toISOString()}::timestamptz
      FROM due WHERE c.id = due.id AND c.work_state = 'OFFERED'
      RETURNING c.id, due.offered_to_id AS agent_id`;
    await appendEvents(
      tx,
      rows.map((r) => ({
        tenantId: data.tenantId,
        type: "routing.offer_expired",
        conversationId: r.id,
        queueId: data.queueId,
        agentId: r.agent_id,
        occurredAt: now,
        payload: {},
      })),
    );
    if (rows.length > 0) after.queues.add(data.queueId);
    return rows.length;
  });
}

function requireOwner(viewer: Viewer, c: Row): void {
  if (c.assigneeId !== viewer.userId && !isSupervisor(viewer)) {
    throw new ConflictError("You do not own this conversation", "NOT_OWNER");
  }
}

/** Park the agent's ACTIVE conversation (handle time stops). */
export async function parkConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
): Promise<Row> {
  return run(ctx, viewer.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    requireOwner(viewer, c);
    if (c.workState === "PARKED") return c;
    if (c.workState !== "ACTIVE" || !c.assigneeId)
      throw new ConflictError("Only an active conversation can be parked");
    const events: NewEvent[] = [];
    await parkActive(tx, viewer.tenantId, c.assigneeId, now, "AGENT", events);
    await appendEvents(tx, events);
    // An agent with nothing active may receive again from queues without auto-parking.
    await queuesOfAgent(tx, viewer.tenantId, c.assigneeId, after);
    return reload(tx, c.id);
  });
}

async function doActivate(
  tx: DbOrTx,
  tenantId: string,
  c: Row,
  agentId: string,
  now: Date,
  reason: string,
  events: NewEvent[],
): Promise<void> {
  const st = await lockAgent(tx, tenantId, agentId);
  if (st.interruptedAt !== null) {
    throw new ConflictError("The agent is interrupted; resume first", "INTERRUPTED");
  }
  await parkActive(tx, tenantId, agentId, now, "SWITCH", events, c.id);
  await tx
    .update(conversation)
    .set({ workState: "ACTIVE", activeSince: now, updatedAt: now, lastActivityAt: now })
    .where(eq(conversation.id, c.id));
  events.push({
    tenantId,
    type: "routing.activated",
    conversationId: c.id,
    queueId: c.queueId,
    agentId,
    occurredAt: now,
    payload: { reason },
  });
}

/** Make a parked conversation the ACTIVE one; the current active one is parked. */
export async function activateConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
): Promise<Row> {
  return run(ctx, viewer.tenantId, async (tx) => {
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    requireOwner(viewer, c);
    if (c.workState === "ACTIVE") return c;
    if (c.workState !== "PARKED" || !c.assigneeId)
      throw new ConflictError("Only a parked conversation can be activated");
    const events: NewEvent[] = [];
    await doActivate(tx, viewer.tenantId, c, c.assigneeId, now, "AGENT", events);
    await appendEvents(tx, events);
    return reload(tx, c.id);
  });
}

/** Stops ownership: handle time folded in, offer cleared. Shared by release, return, transfer, assign. */
async function unown(tx: DbOrTx, c: Row, now: Date): Promise<{ handleTimeMs: number }> {
  const handleTimeMs = c.handleTimeMs + (c.workState === "ACTIVE" ? elapsed(c.activeSince, now) : 0);
  await tx
    .update(conversation)
    .set({
      assigneeId: null,
      activeSince: null,
      handleTimeMs,
      offeredToId: null,
      offerExpiresAt: null,
      updatedAt: now,
    })
    .where(eq(conversation.id, c.id));
  return { handleTimeMs };
}

/**
 * Take a WAITING conversation from the queue (agents may do so even with others
 * assigned). It becomes ACTIVE, parking the current one, unless the agent is interrupted.
 */
export async function pickConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
): Promise<Row> {
  return run(ctx, viewer.tenantId, async (tx) => {
    await lockTenantRouting(tx, viewer.tenantId);
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    if (c.workState !== "WAITING")
      throw new ConflictError("This conversation is not waiting in a queue", "NOT_WAITING");
    return deliverManually(tx, c, viewer.userId, viewer.userId, now, "PICKED");
  });
}

async function deliverManually(
  tx: DbOrTx,
  c: Row,
  agentId: string,
  actorId: string,
  now: Date,
  mode: "PICKED" | "SUPERVISOR" | "OUTBOUND",
): Promise<Row> {
  const st = await lockAgent(tx, c.tenantId, agentId);
  const events: NewEvent[] = [];
  // A pick is the agent's choice of what to work on now; a supervisor's assignment
  // lands parked when the agent is busy.
  const active = await activeOf(tx, agentId);
  const activate = st.interruptedAt === null && (mode === "PICKED" || !active);
  if (activate) await parkActive(tx, c.tenantId, agentId, now, "SWITCH", events);
  await tx
    .update(conversation)
    .set({
      workState: activate ? "ACTIVE" : "PARKED",
      assigneeId: agentId,
      assignedAt: now,
      activeSince: activate ? now : null,
      offeredToId: null,
      offerExpiresAt: null,
      lastActivityAt: now,
      updatedAt: now,
    })
    .where(eq(conversation.id, c.id));
  await tx
    .update(contact)
    .set({ preferredAgentId: agentId, preferredAgentAt: now })
    .where(eq(contact.id, c.contactId));
  await tx
    .update(agentState)
    .set({ lastAssignedAt: now, updatedAt: now })
    .where(eq(agentState.userId, agentId));
  events.push({
    tenantId: c.tenantId,
    type: "routing.assigned",
    conversationId: c.id,
    queueId: c.queueId,
    agentId,
    actorType: "USER",
    actorId,
    occurredAt: now,
    payload: { mode, workState: activate ? "ACTIVE" : "PARKED" },
  });
  await appendEvents(tx, events);
  return reload(tx, c.id);
}

/**
 * A conversation an agent starts with a new outbound mail is theirs from the start, in
 * the transaction that creates it: assigned like a supervisor's assignment (ACTIVE when
 * the agent has no ACTIVE one and is not interrupted, else PARKED; the inbox limit does
 * not refuse what the agent chose to start). Takes the tenant routing lock first, as every
 * action that adds load to an agent does.
 */
export async function assignStartedConversation(
  tx: Tx,
  ctx: EngineContext,
  tenantId: string,
  conversationId: string,
  agentId: string,
): Promise<Row> {
  await lockTenantRouting(tx, tenantId);
  const c = await lockConversation(tx, tenantId, conversationId);
  return deliverManually(tx, c, agentId, agentId, ctx.clock.now(), "OUTBOUND");
}

/** Supervisor: assign or reassign to an agent (any work state but DONE). */
export async function assignConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
  agentId: string,
): Promise<Row> {
  if (!isSupervisor(viewer)) throw new ForbiddenError("Only supervisors and admins assign conversations");
  return run(ctx, viewer.tenantId, async (tx, after) => {
    await lockTenantRouting(tx, viewer.tenantId);
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    const [agent] = await tx
      .select({ id: user.id })
      .from(user)
      .where(and(eq(user.id, agentId), eq(user.tenantId, viewer.tenantId), isNull(user.archivedAt)));
    if (!agent) throw new NotFoundError("User", agentId);
    if (c.workState === "DONE") throw new ConflictError("A finished conversation cannot be assigned");
    if (c.assigneeId === agentId) return c;
    const previous = c.assigneeId ?? c.offeredToId;
    if (previous) {
      const { handleTimeMs } = await unown(tx, c, now);
      await appendEvents(tx, [
        {
          tenantId: c.tenantId,
          type: "routing.unassigned",
          conversationId: c.id,
          queueId: c.queueId,
          agentId: previous,
          actorType: "USER",
          actorId: viewer.userId,
          occurredAt: now,
          payload: { reason: "REASSIGNED", handleTimeMs },
        },
      ]);
      await queuesOfAgent(tx, viewer.tenantId, previous, after);
    }
    return deliverManually(tx, c, agentId, viewer.userId, now, "SUPERVISOR");
  });
}

/** Owner or supervisor: back to the queue (a fresh wait; the queue routes it again). */
export async function returnToQueue(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
): Promise<Row> {
  return run(ctx, viewer.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    requireOwner(viewer, c);
    if (c.workState !== "ACTIVE" && c.workState !== "PARKED") {
      throw new ConflictError("Only an assigned conversation can be returned to the queue");
    }
    if (!c.queueId) throw new ConflictError("The conversation has no queue to return to");
    const { handleTimeMs } = await unown(tx, c, now);
    await tx
      .update(conversation)
      .set({ workState: "WAITING", enqueuedAt: now, offerExcludedIds: [] })
      .where(eq(conversation.id, c.id));
    await appendEvents(tx, [
      {
        tenantId: c.tenantId,
        type: "routing.unassigned",
        conversationId: c.id,
        queueId: c.queueId,
        agentId: c.assigneeId,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: now,
        payload: { reason: "RETURNED", handleTimeMs },
      },
    ]);
    after.queues.add(c.queueId);
    if (c.assigneeId) await queuesOfAgent(tx, viewer.tenantId, c.assigneeId, after);
    return reload(tx, c.id);
  });
}

/** Move to another queue with new required skills; it waits there (TRANSFER permission). */
export async function transferConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
  queueId: string,
  requiredSkillIds: string[] | null,
): Promise<Row> {
  requirePermission(viewer, "TRANSFER");
  return run(ctx, viewer.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const c = await lockConversation(tx, viewer.tenantId, conversationId);
    checkVisible(viewer, c);
    // Live and key-share locked until the commit (live-queues.ts): an archive of the target
    // waits for the transfer and then sees its work.
    if (!(await isLiveQueue(tx, viewer.tenantId, queueId))) throw new NotFoundError("Queue", queueId);
    if (c.workState === "DONE") throw new ConflictError("A finished conversation cannot be transferred");
    if (requiredSkillIds && requiredSkillIds.length > 20) {
      throw new ValidationError({ field: "requiredSkillIds", message: "at most 20 skills" });
    }
    if (requiredSkillIds?.length) {
      // Only the tenant's own live skills: another tenant's or an unknown one would leave
      // the conversation waiting for an agent who can never exist.
      const p = new Problems();
      await checkRefs(
        tx,
        viewer.tenantId,
        p,
        requiredSkillIds.map((id, i) => ({
          field: `requiredSkillIds[${i}]`,
          table: skill,
          id,
          what: "skill",
        })),
      );
      p.throwIfAny();
    }
    const previous = c.assigneeId ?? c.offeredToId;
    const { handleTimeMs } = await unown(tx, c, now);
    await tx
      .update(conversation)
      .set({
        workState: "WAITING",
        queueId,
        enqueuedAt: now,
        offerExcludedIds: [],
        ...(requiredSkillIds ? { requiredSkillIds } : {}),
      })
      .where(eq(conversation.id, c.id));
    await appendEvents(tx, [
      {
        tenantId: c.tenantId,
        type: "conversation.transferred",
        conversationId: c.id,
        queueId,
        agentId: previous,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: now,
        payload: { fromQueueId: c.queueId, toQueueId: queueId, requiredSkillIds, handleTimeMs },
      },
    ]);
    after.queues.add(queueId);
    if (previous) await queuesOfAgent(tx, viewer.tenantId, previous, after);
    return reload(tx, c.id);
  });
}

/** Adds every queue the agent serves (directly or by team) to the after-commit routing set. */
async function queuesOfAgent(tx: DbOrTx, tenantId: string, agentId: string, after: After): Promise<void> {
  const rows = await tx
    .selectDistinct({ queueId: queueMember.queueId })
    .from(queueMember)
    .innerJoin(user, eq(user.id, agentId))
    .where(
      and(
        eq(queueMember.tenantId, tenantId),
        or(eq(queueMember.userId, agentId), sql`${queueMember.teamId} = ${user.teamId}`),
      ),
    );
  for (const r of rows) after.queues.add(r.queueId);
}

/** A presence or interruption reason: one line of at most 200 characters (it is shown and logged). */
function checkReason(reason: string | null | undefined): void {
  const p = new Problems();
  checkText(p, "reason", reason, 200);
  p.throwIfAny();
}

/** The viewer's own presence and login flag; routing runs for every queue the agent serves. */
export async function setPresence(
  ctx: EngineContext,
  viewer: Viewer,
  input: { presence: Presence; reason?: string | null; loggedIn?: boolean | null },
): Promise<typeof user.$inferSelect> {
  checkReason(input.reason);
  return run(ctx, viewer.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const [before] = await tx.select().from(user).where(eq(user.id, viewer.userId)).for("no key update");
    if (!before) throw new NotFoundError("User", viewer.userId);
    const loggedIn = input.loggedIn ?? (input.presence === "OFFLINE" ? false : before.loggedIn || true);
    const [row] = await tx
      .update(user)
      .set({
        presence: input.presence,
        presenceReason: input.presence === "AVAILABLE" ? null : (input.reason ?? null),
        presenceChangedAt: now,
        loggedIn,
        updatedAt: now,
      })
      .where(eq(user.id, viewer.userId))
      .returning();
    await appendEvents(tx, [
      {
        tenantId: viewer.tenantId,
        type: "agent.presence_changed",
        agentId: viewer.userId,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: now,
        payload: {
          from: before.presence,
          to: input.presence,
          reason: row!.presenceReason,
          loggedIn,
        },
      },
    ]);
    await queuesOfAgent(tx, viewer.tenantId, viewer.userId, after);
    return row!;
  });
}

function requireSelfOrSupervisor(viewer: Viewer, agentId: string): void {
  if (viewer.userId !== agentId && !isSupervisor(viewer)) {
    throw new ForbiddenError("Only the agent itself or a supervisor may do this");
  }
}

/**
 * A voice platform interrupts an agent: the ACTIVE email is parked and remembered, and
 * nothing is activated until `resumeAgent`. Repeating it changes nothing.
 */
export async function interruptAgent(
  ctx: EngineContext,
  viewer: Viewer,
  agentId: string,
  reason: string | null,
): Promise<{ agentId: string; conversationId: string | null }> {
  requireSelfOrSupervisor(viewer, agentId);
  checkReason(reason);
  return run(ctx, viewer.tenantId, async (tx) => {
    const now = ctx.clock.now();
    await requireAgentInTenant(tx, viewer.tenantId, agentId);
    await requireAgentInViewersQueues(tx, viewer, agentId);
    const active = await activeOf(tx, agentId);
    const st = await lockAgent(tx, viewer.tenantId, agentId);
    if (st.interruptedAt !== null) return { agentId, conversationId: st.interruptedConversationId };
    const events: NewEvent[] = [];
    const parked = active ? await parkActive(tx, viewer.tenantId, agentId, now, "INTERRUPT", events) : null;
    await tx
      .update(agentState)
      .set({ interruptedAt: now, interruptedConversationId: parked, updatedAt: now })
      .where(eq(agentState.userId, agentId));
    events.push({
      tenantId: viewer.tenantId,
      type: "agent.interrupted",
      conversationId: parked,
      // Whose queue it concerns: tenantEvents shows it to those who see that queue.
      queueId: parked ? (active?.queueId ?? null) : null,
      agentId,
      actorType: "USER",
      actorId: viewer.userId,
      occurredAt: now,
      payload: { reason },
    });
    await appendEvents(tx, events);
    return { agentId, conversationId: parked };
  });
}

/** Ends an interruption; the parked conversation becomes ACTIVE again if still the agent's and parked. */
export async function resumeAgent(
  ctx: EngineContext,
  viewer: Viewer,
  agentId: string,
): Promise<{ agentId: string; conversationId: string | null }> {
  requireSelfOrSupervisor(viewer, agentId);
  return run(ctx, viewer.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    await requireAgentInTenant(tx, viewer.tenantId, agentId);
    await requireAgentInViewersQueues(tx, viewer, agentId);
    const [pre] = await tx.select().from(agentState).where(eq(agentState.userId, agentId));
    const target = pre?.interruptedConversationId
      ? await lockConversation(tx, viewer.tenantId, pre.interruptedConversationId).catch(() => null)
      : null;
    const st = await lockAgent(tx, viewer.tenantId, agentId);
    if (st.interruptedAt === null) return { agentId, conversationId: null };
    await tx
      .update(agentState)
      .set({ interruptedAt: null, interruptedConversationId: null, updatedAt: now })
      .where(eq(agentState.userId, agentId));
    const events: NewEvent[] = [];
    let resumed: string | null = null;
    if (
      target &&
      target.assigneeId === agentId &&
      target.workState === "PARKED" &&
      !(await activeOf(tx, agentId))
    ) {
      await tx
        .update(conversation)
        .set({ workState: "ACTIVE", activeSince: now, updatedAt: now })
        .where(eq(conversation.id, target.id));
      events.push({
        tenantId: viewer.tenantId,
        type: "routing.activated",
        conversationId: target.id,
        queueId: target.queueId,
        agentId,
        occurredAt: now,
        payload: { reason: "RESUMED" },
      });
      resumed = target.id;
    }
    events.push({
      tenantId: viewer.tenantId,
      type: "agent.resumed",
      conversationId: resumed,
      queueId: resumed ? (target?.queueId ?? null) : null,
      agentId,
      actorType: "USER",
      actorId: viewer.userId,
      occurredAt: now,
      payload: { interruptedMs: elapsed(st.interruptedAt, now), reactivated: resumed !== null },
    });
    await appendEvents(tx, events);
    await queuesOfAgent(tx, viewer.tenantId, agentId, after);
    return { agentId, conversationId: resumed };
  });
}

/**
 * A supervisor whose access profile limits its queues acts only on agents of those
 * queues (members directly or through their team); any other agent is unknown to it, as
 * their conversations are. Unrestricted supervisors and the agent itself pass.
 */
async function requireAgentInViewersQueues(tx: DbOrTx, viewer: Viewer, agentId: string): Promise<void> {
  if (viewer.queueIds === null || viewer.userId === agentId) return;
  const queues = [...viewer.queueIds];
  const rows =
    queues.length === 0
      ? []
      : await rawClient(tx)`
          SELECT 1 FROM queue_member m JOIN "user" u ON u.id = ${agentId}::uuid
           WHERE m.tenant_id = ${viewer.tenantId}::uuid AND m.queue_id = ANY(${queues}::uuid[])
             AND (m.user_id = u.id OR (u.team_id IS NOT NULL AND m.team_id = u.team_id))
           LIMIT 1`;
  if (rows.length === 0) throw new NotFoundError("User", agentId);
}

async function requireAgentInTenant(tx: DbOrTx, tenantId: string, agentId: string): Promise<void> {
  const [u] = await tx
    .select({ id: user.id })
    .from(user)
    .where(and(eq(user.id, agentId), eq(user.tenantId, tenantId)));
  if (!u) throw new NotFoundError("User", agentId);
}

/**
 * For lifecycle (resolve/close): the conversation leaves routing. Work state DONE, owner
 * and offer cleared, the running handle-time segment folded in. Runs inside the
 * caller's transaction (which should already hold the conversation row); returns the
 * queues to route after commit — call `ctx.signals.routeQueue` for each once committed.
 * When the released conversation was the agent's ACTIVE one and the queue presents the
 * next, the most urgent parked conversation of the agent becomes ACTIVE.
 */
export async function releaseConversation(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
  reason: string,
): Promise<{ queueIds: string[]; agentId: string | null }> {
  const now = ctx.clock.now();
  const [c] = await tx
    .select()
    .from(conversation)
    .where(eq(conversation.id, conversationId))
    .for("no key update");
  if (!c) throw new NotFoundError("Conversation", conversationId);
  if (c.workState === "DONE") return { queueIds: [], agentId: null };
  const agentId = c.assigneeId ?? c.offeredToId;
  const { handleTimeMs } = await unown(tx, c, now);
  await tx.update(conversation).set({ workState: "DONE" }).where(eq(conversation.id, c.id));
  const events: NewEvent[] = [
    {
      tenantId: c.tenantId,
      type: "routing.unassigned",
      conversationId: c.id,
      queueId: c.queueId,
      agentId,
      occurredAt: now,
      payload: { reason, handleTimeMs, released: true },
    },
  ];
  const after: After = { queues: new Set() };
  if (agentId) {
    await queuesOfAgent(tx, c.tenantId, agentId, after);
    if (c.workState === "ACTIVE" && c.queueId)
      await presentNext(tx, c.tenantId, c.queueId, agentId, now, events);
  }
  await appendEvents(tx, events);
  return { queueIds: [...after.queues], agentId };
}

async function presentNext(
  tx: DbOrTx,
  tenantId: string,
  queueId: string,
  agentId: string,
  now: Date,
  events: NewEvent[],
): Promise<void> {
  const [q] = await tx
    .select({ presentNext: queue.presentNextWhenAllParked })
    .from(queue)
    .where(eq(queue.id, queueId));
  if (!q?.presentNext) return;
  const st = await lockAgent(tx, tenantId, agentId);
  if (st.interruptedAt !== null || (await activeOf(tx, agentId))) return;
  // MOST_URGENT (working-set.ts): earliest SLA deadline, then priority, then parked longest.
  const [next] = await rawClient(tx)<{ id: string; queue_id: string | null }[]>`
    SELECT id, queue_id FROM conversation
    WHERE assignee_id = ${agentId} AND work_state = 'PARKED'
    ORDER BY CASE WHEN first_responded_at IS NULL THEN first_response_due_at ELSE next_response_due_at END NULLS LAST,
             priority DESC, updated_at, id
    LIMIT 1 FOR NO KEY UPDATE`;
  if (!next) return;
  await tx
    .update(conversation)
    .set({ workState: "ACTIVE", activeSince: now, updatedAt: now })
    .where(eq(conversation.id, next.id));
  events.push({
    tenantId,
    type: "routing.activated",
    conversationId: next.id,
    queueId: next.queue_id,
    agentId,
    occurredAt: now,
    payload: { reason: "PRESENTED" },
  });
}

/**
 * For outbound: after an agent reply is queued, start the queue's customer-response
 * countdown (if the queue has one). When it fires and the customer has not written
 * since, the conversation is unassigned (work state DONE, no owner); the customer's next
 * reply puts it back in the queue. Runs inside the caller's transaction. `known` is the
 * conversation's tenant and its queue's countdown (null: no queue or no countdown) when
 * the caller already read them with the locked row; then nothing is read here.
 */
export async function startCustomerResponseCountdown(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
  known?: { tenantId: string; minutes: number | null },
): Promise<Date | null> {
  const now = ctx.clock.now();
  const [row] = known
    ? [known]
    : await tx
        .select({ tenantId: conversation.tenantId, minutes: queue.customerResponseCountdownMinutes })
        .from(conversation)
        .innerJoin(queue, eq(queue.id, conversation.queueId))
        .where(eq(conversation.id, conversationId));
  if (!row || row.minutes === null || row.minutes <= 0) return null;
  const due = new Date(now.getTime() + row.minutes * 60_000);
  await ctx.jobs.schedule(
    ROUTING_JOBS.countdown,
    { tenantId: row.tenantId, conversationId, startedAt: now.toISOString() },
    { db: tx, startAfter: due },
  );
  return due;
}

/**
 * Countdown job: unassigns only when it still holds — the conversation is owned, the
 * customer has not written since the countdown started, and no later agent reply
 * restarted it (that one has its own job).
 */
export async function expireCountdown(
  ctx: EngineContext,
  data: { tenantId: string; conversationId: string; startedAt: string },
): Promise<boolean> {
  return run(ctx, data.tenantId, async (tx, after) => {
    const now = ctx.clock.now();
    const startedAt = new Date(data.startedAt);
    const [c] = await tx
      .select()
      .from(conversation)
      .where(and(eq(conversation.id, data.conversationId), eq(conversation.tenantId, data.tenantId)))
      .for("no key update");
    if (!c || (c.workState !== "ACTIVE" && c.workState !== "PARKED") || !c.assigneeId) return false;
    if (c.lastInboundAt && c.lastInboundAt >= startedAt) return false;
    if (c.lastOutboundAt && c.lastOutboundAt > startedAt) return false;
    const [q] = c.queueId
      ? await tx
          .select({ minutes: queue.customerResponseCountdownMinutes })
          .from(queue)
          .where(eq(queue.id, c.queueId))
      : [];
    if (!q?.minutes || now.getTime() < startedAt.getTime() + q.minutes * 60_000) return false;
    const r = await releaseConversation(tx, ctx, c.id, "CUSTOMER_RESPONSE_TIMEOUT");
    for (const id of r.queueIds) after.queues.add(id);
    return true;
  });
}

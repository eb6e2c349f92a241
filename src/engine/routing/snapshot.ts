import type postgres from "postgres";
import type { BusinessCalendar, Presence } from "../domain.js";
import { isOpen } from "../time/calendar.js";
import { effectiveInboxLimit } from "./eligibility.js";
import { toDate } from "./sql-time.js";
import {
  DEFAULT_INBOX_LIMIT,
  type InboxLimit,
  PRESENT_NEXT_POLICIES,
  type RoutingAgent,
  type RoutingQueue,
  type RoutingSnapshot,
  type WaitingConversation,
} from "./types.js";

/**
 * Loads one queue's routing snapshot with one set-based query per record type
 * (docs/routing-core.md): the queue with its members as arrays, the agents with their
 * work counts as aggregates, and the waiting conversations in queue order.
 */

/** How many waiting conversations one pass loads; the service loops while a pass fills up. */
export const WAITING_PAGE = 2_000;

export interface QueueRow extends RoutingQueue {
  tenantId: string;
  customerResponseCountdownMinutes: number | null;
  presentNextWhenAllParked: boolean;
}

function limitOf(value: number | null, off: boolean): InboxLimit | null {
  if (off) return "OFF";
  return value;
}

interface RawQueue {
  id: string;
  tenant_id: string;
  strategy: RoutingQueue["strategy"];
  queue_order: RoutingQueue["order"];
  auto_assign: boolean;
  routable_presences: Presence[];
  auto_assign_only_logged_in: boolean;
  daily_auto_assign_limit: number | null;
  auto_assign_only_in_business_hours: boolean;
  offer_required: boolean;
  offer_timeout_seconds: number;
  auto_parking: boolean;
  auto_park_spacing_seconds: number;
  preferred_agent_mode: RoutingQueue["preferredAgentMode"];
  preferred_agent_timeout_seconds: number;
  present_next_when_all_parked: boolean;
  customer_response_countdown_minutes: number | null;
  member_agent_ids: string[];
  member_team_ids: string[];
  archived: boolean;
  tz: string;
  cal_tz: string | null;
  cal_intervals: BusinessCalendar["intervals"] | null;
  cal_holidays: BusinessCalendar["holidays"] | null;
}

export interface LoadedQueue {
  queue: QueueRow;
  timeZone: string;
  businessOpen: boolean;
  archived: boolean;
}

export async function loadQueue(
  sql: postgres.Sql,
  tenantId: string,
  queueId: string,
  now: Date,
): Promise<LoadedQueue | null> {
  const [q] = await sql<RawQueue[]>`
    SELECT q.id, q.tenant_id, q.strategy, q.queue_order, q.auto_assign, q.routable_presences,
           q.auto_assign_only_logged_in, q.daily_auto_assign_limit, q.auto_assign_only_in_business_hours,
           q.offer_required, q.offer_timeout_seconds, q.auto_parking, q.auto_park_spacing_seconds,
           q.preferred_agent_mode, q.preferred_agent_timeout_seconds, q.present_next_when_all_parked,
           q.customer_response_countdown_minutes, q.archived_at IS NOT NULL AS archived,
           coalesce(array_agg(m.user_id) FILTER (WHERE m.user_id IS NOT NULL), '{}') AS member_agent_ids,
           coalesce(array_agg(m.team_id) FILTER (WHERE m.team_id IS NOT NULL), '{}') AS member_team_ids,
           t.time_zone AS tz, c.time_zone AS cal_tz, c.intervals AS cal_intervals, c.holidays AS cal_holidays
    FROM queue q
    JOIN tenant t ON t.id = q.tenant_id
    LEFT JOIN queue_member m ON m.queue_id = q.id
    LEFT JOIN business_calendar c ON c.id = q.calendar_id
    WHERE q.id = ${queueId} AND q.tenant_id = ${tenantId}
    GROUP BY q.id, t.time_zone, c.id`;
  if (!q) return null;
  const calendar: BusinessCalendar | null =
    q.cal_tz === null
      ? null
      : { timeZone: q.cal_tz, intervals: q.cal_intervals ?? [], holidays: q.cal_holidays ?? [] };
  // No calendar means "always open": business-hours-only needs a calendar to close anything.
  const businessOpen = calendar === null ? true : isOpen(calendar, now);
  const queue: QueueRow = {
    id: q.id,
    tenantId: q.tenant_id,
    strategy: q.strategy,
    order: q.queue_order,
    memberAgentIds: q.member_agent_ids,
    memberTeamIds: q.member_team_ids,
    autoAssign: q.auto_assign,
    routablePresences: q.routable_presences,
    onlyLoggedIn: q.auto_assign_only_logged_in,
    dailyLimit: q.daily_auto_assign_limit,
    businessHoursOnly: q.auto_assign_only_in_business_hours,
    offerRequired: q.offer_required,
    offerTimeoutS: q.offer_timeout_seconds,
    autoParking: q.auto_parking,
    autoParkSpacingS: q.auto_park_spacing_seconds,
    preferredAgentMode: q.preferred_agent_mode,
    preferredAgentTimeoutS: q.preferred_agent_timeout_seconds,
    presentNext: q.present_next_when_all_parked ? PRESENT_NEXT_POLICIES[2] : PRESENT_NEXT_POLICIES[0],
    presentNextWhenAllParked: q.present_next_when_all_parked,
    customerResponseCountdownMinutes: q.customer_response_countdown_minutes,
  };
  return { queue, timeZone: q.tz, businessOpen, archived: q.archived };
}

interface RawWaiting {
  id: string;
  priority: number;
  enqueued_at: Date | string;
  sla_due_at: Date | string | null;
  required_skill_ids: string[];
  preferred_agent_id: string | null;
  offer_excluded_ids: string[];
}

export async function loadWaiting(
  sql: postgres.Sql,
  tenantId: string,
  queueId: string,
  limit: number,
  order: RoutingQueue["order"] = "PRIORITY_SCORE",
): Promise<WaitingConversation[]> {
  // The queue's order as SQL, so the LIMIT keeps the conversations the planner would walk
  // first (docs/routing-core.md): priority + minutes waiting, or the least SLA time left
  // (conversations without an SLA after those with one).
  const dueAt = sql`CASE WHEN c.first_responded_at IS NULL THEN c.first_response_due_at ELSE c.next_response_due_at END`;
  const orderBy =
    order === "SLA_REMAINING"
      ? sql`${dueAt} ASC NULLS LAST, c.enqueued_at, c.id`
      : sql`c.priority::float8 * 60000 - extract(epoch FROM coalesce(c.enqueued_at, c.created_at)) * 1000 DESC,
             c.enqueued_at, c.id`;
  const rows = await sql<RawWaiting[]>`
    SELECT c.id, c.priority, coalesce(c.enqueued_at, c.created_at) AS enqueued_at,
           ${dueAt} AS sla_due_at,
           c.required_skill_ids, ct.preferred_agent_id, c.offer_excluded_ids
    FROM conversation c
    JOIN contact ct ON ct.id = c.contact_id
    WHERE c.tenant_id = ${tenantId} AND c.queue_id = ${queueId} AND c.work_state = 'WAITING'
    ORDER BY ${orderBy}
    LIMIT ${limit}`;
  return rows.map((r) => ({
    id: r.id,
    priority: r.priority,
    enqueuedAt: toDate(r.enqueued_at)!,
    slaDueAt: toDate(r.sla_due_at),
    requiredSkills: r.required_skill_ids.map((skillId) => ({ skillId, minProficiency: null })),
    preferredAgentId: r.preferred_agent_id,
    excludedAgentIds: r.offer_excluded_ids,
  }));
}

interface RawAgent {
  id: string;
  team_id: string | null;
  presence: Presence;
  logged_in: boolean;
  inbox_limit: number | null;
  inbox_limit_off: boolean;
  team_limit: number | null;
  team_off: boolean | null;
  skills: { skillId: string; proficiency: number }[];
  active: number;
  parked: number;
  offered: number;
  daily_count: number | null;
  daily_date: string | null;
  last_assigned_at: Date | string | null;
  last_auto_delivered_at: Date | string | null;
}

/** The queue's members (directly or by team) plus the named extra agents (preferred agents). */
export async function loadAgents(
  sql: postgres.Sql,
  tenantId: string,
  queue: RoutingQueue,
  extraIds: readonly string[],
): Promise<RoutingAgent[]> {
  const rows = await sql<RawAgent[]>`
    WITH ids AS (
      SELECT u.id FROM "user" u
      WHERE u.tenant_id = ${tenantId} AND u.archived_at IS NULL
        AND (u.id = ANY(${queue.memberAgentIds as string[]}::uuid[]) OR u.team_id = ANY(${queue.memberTeamIds as string[]}::uuid[])
             OR u.id = ANY(${extraIds as string[]}::uuid[]))
    ),
    sk AS (
      SELECT s.user_id, json_agg(json_build_object('skillId', s.skill_id, 'proficiency', s.proficiency)) AS skills
      FROM agent_skill s WHERE s.user_id IN (SELECT id FROM ids) GROUP BY s.user_id
    )
    SELECT u.id, u.team_id, u.presence, u.logged_in, u.inbox_limit, u.inbox_limit_off,
           t.inbox_limit AS team_limit, t.inbox_limit_off AS team_off,
           coalesce(sk.skills, '[]'::json) AS skills,
           w.active, w.parked, w.offered + o.offered AS offered,
           dc.count AS daily_count, dc.day::text AS daily_date,
           st.last_assigned_at, st.last_auto_delivered_at
    FROM ids JOIN "user" u ON u.id = ids.id
    LEFT JOIN team t ON t.id = u.team_id
    LEFT JOIN agent_state st ON st.user_id = u.id
    LEFT JOIN agent_queue_daily dc ON dc.user_id = u.id AND dc.queue_id = ${queue.id}
    -- Work per agent (owner, or offered-to while unowned), one index probe per agent on
    -- conversation_assignee_idx / _offered_to_idx: never a scan of the tenant's owned work.
    CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE c.work_state = 'ACTIVE')::int AS active,
             count(*) FILTER (WHERE c.work_state = 'PARKED')::int AS parked,
             count(*) FILTER (WHERE c.work_state = 'OFFERED')::int AS offered
      FROM conversation c
      WHERE c.assignee_id = u.id AND c.work_state IN ('ACTIVE', 'PARKED', 'OFFERED')
    ) w
    CROSS JOIN LATERAL (
      SELECT count(*)::int AS offered FROM conversation c
      WHERE c.offered_to_id = u.id AND c.assignee_id IS NULL AND c.work_state IN ('ACTIVE', 'PARKED', 'OFFERED')
    ) o
    LEFT JOIN sk ON sk.user_id = u.id`;
  return rows.map((r) => ({
    id: r.id,
    teamId: r.team_id,
    presence: r.presence,
    loggedIn: r.logged_in,
    inboxLimit: limitOf(r.inbox_limit, r.inbox_limit_off),
    teamInboxLimit: r.team_off === null ? null : limitOf(r.team_limit, r.team_off),
    skills: r.skills,
    activeCount: r.active,
    parkedCount: r.parked,
    offeredCount: r.offered,
    dailyCount: r.daily_count ?? 0,
    dailyCountDate: r.daily_date,
    lastAssignedAt: toDate(r.last_assigned_at),
    lastAutoDeliveredAt: toDate(r.last_auto_delivered_at),
  }));
}

/**
 * Upper bound on the deliveries one pass can make: per agent that could receive at all,
 * its free inbox room, or 1 when offers, spacing or the one-active rule allow only one.
 * Used to size the page of waiting conversations (skills and exclusions may leave some
 * unplaceable, hence the slack in `loadSnapshot`).
 */
export function deliverableBound(queue: RoutingQueue, agents: readonly RoutingAgent[]): number {
  let free = 0;
  for (const a of agents) {
    if (!queue.routablePresences.includes(a.presence)) continue;
    if (queue.onlyLoggedIn && !a.loggedIn) continue;
    const limit = effectiveInboxLimit(a.inboxLimit, a.teamInboxLimit);
    if (limit === "OFF") continue;
    const room = limit - (a.activeCount + a.parkedCount + a.offeredCount);
    if (room <= 0) continue;
    if (queue.offerRequired) free += a.offeredCount === 0 ? 1 : 0;
    else if (!queue.autoParking) free += a.activeCount === 0 ? 1 : 0;
    else if (queue.autoParkSpacingS > 0) free += 1;
    else free += room;
  }
  return free;
}

/** `maxDeliveries`: the pass's cap (planAssignments), so the page is sized for what it may deliver. */
export async function loadSnapshot(
  sql: postgres.Sql,
  loaded: LoadedQueue,
  limit: number = WAITING_PAGE,
  maxDeliveries: number = Number.POSITIVE_INFINITY,
): Promise<RoutingSnapshot & { pageLimit: number }> {
  const { queue } = loaded;
  const base = {
    queue,
    timeZone: loaded.timeZone,
    businessOpen: loaded.businessOpen,
    defaultInboxLimit: DEFAULT_INBOX_LIMIT,
  };
  if (queue.strategy === "PREFERRED_AGENT") {
    // The preferred agents are named by the waiting rows, so those load first.
    const waiting = await loadWaiting(sql, queue.tenantId, queue.id, limit, queue.order);
    const preferred = [
      ...new Set(waiting.map((w) => w.preferredAgentId).filter((x): x is string => x !== null)),
    ];
    const agents = waiting.length === 0 ? [] : await loadAgents(sql, queue.tenantId, queue, preferred);
    return { ...base, agents, waiting, pageLimit: limit };
  }
  // Agents first: a pass never needs more waiting rows than it can deliver (plus slack
  // for rows no open agent qualifies for), which keeps a 20,000-deep queue cheap.
  const agents = await loadAgents(sql, queue.tenantId, queue, []);
  const bound = Math.min(deliverableBound(queue, agents), maxDeliveries);
  if (bound === 0 || !queue.autoAssign) return { ...base, agents, waiting: [], pageLimit: 0 };
  const pageLimit = Math.min(limit, Math.max(50, bound * 3));
  const waiting = await loadWaiting(sql, queue.tenantId, queue.id, pageLimit, queue.order);
  return { ...base, agents, waiting, pageLimit };
}

import type { PresentNextPolicy } from "./types.js";

/**
 * An agent's working set (SPEC §8): the conversations it owns, at most one ACTIVE and the
 * rest PARKED. Handle time accrues only while ACTIVE: parking adds the session to
 * `handleTimeMs`, activating restarts the clock. An interruption (a voice call, which
 * outranks email) parks the active conversation and remembers it for `resume`.
 *
 * Every operation is pure: it returns the new state and the events to write in the same
 * transaction, or an error; the input is never modified. Repeating an operation whose
 * effect is already in place (park a parked one, interrupt twice) succeeds with no
 * events, so a retried API call writes nothing twice.
 */

export interface OwnedConversation {
  id: string;
  state: "ACTIVE" | "PARKED";
  /** Handle time accrued in finished ACTIVE sessions. */
  handleTimeMs: number;
  /** Start of the running ACTIVE session; null while PARKED. */
  activeSince: Date | null;
  /** When it was last parked (or delivered parked); null while ACTIVE. */
  parkedAt: Date | null;
  priority: number;
  slaDueAt: Date | null;
}

export interface Interruption {
  since: Date;
  /** The conversation that was ACTIVE when the interruption began, to resume afterwards. */
  conversationId: string | null;
  reason: string | null;
}

export interface WorkingSet {
  agentId: string;
  conversations: readonly OwnedConversation[];
  interruption: Interruption | null;
}

export type ActivationReason = "AGENT" | "DELIVERED" | "PRESENTED" | "RESUMED";
export type ParkReason = "AGENT" | "SWITCH" | "INTERRUPT" | "DELIVERED";

export type WorkingSetEvent =
  | { type: "ACTIVATED"; conversationId: string; payload: { reason: ActivationReason } }
  | {
      type: "PARKED";
      conversationId: string;
      /** sessionMs: the ACTIVE session just ended (0 when delivered parked). */
      payload: { reason: ParkReason; sessionMs: number; handleTimeMs: number };
    }
  | { type: "INTERRUPTED"; conversationId: string | null; payload: { reason: string | null } }
  | {
      type: "RESUMED";
      conversationId: string | null;
      payload: { interruptedMs: number; reactivated: boolean };
    }
  | { type: "RELEASED"; conversationId: string; payload: { handleTimeMs: number; wasActive: boolean } };

export type WorkingSetError = "NOT_OWNED" | "ALREADY_OWNED" | "INTERRUPTED";

export type WorkingSetResult =
  | { ok: true; state: WorkingSet; events: WorkingSetEvent[] }
  | { ok: false; error: WorkingSetError };

function elapsedMs(since: Date | null, now: Date): number {
  // A clock behind the stored start (another instance's clock) must not subtract time.
  return since === null ? 0 : Math.max(0, now.getTime() - since.getTime());
}

/** Handle time including the running session, for display. */
export function handleTimeAt(conversation: OwnedConversation, now: Date): number {
  return (
    conversation.handleTimeMs +
    (conversation.state === "ACTIVE" ? elapsedMs(conversation.activeSince, now) : 0)
  );
}

function parked(c: OwnedConversation, now: Date, reason: ParkReason): [OwnedConversation, WorkingSetEvent] {
  const sessionMs = elapsedMs(c.activeSince, now);
  const next: OwnedConversation = {
    ...c,
    state: "PARKED",
    handleTimeMs: c.handleTimeMs + sessionMs,
    activeSince: null,
    parkedAt: now,
  };
  return [
    next,
    { type: "PARKED", conversationId: c.id, payload: { reason, sessionMs, handleTimeMs: next.handleTimeMs } },
  ];
}

function activated(c: OwnedConversation, now: Date): OwnedConversation {
  return { ...c, state: "ACTIVE", activeSince: now, parkedAt: null };
}

/** A newly assigned conversation: ACTIVE when the agent has nothing active and no call, else PARKED. */
export function receive(
  ws: WorkingSet,
  conversation: { id: string; priority: number; slaDueAt: Date | null },
  now: Date,
): WorkingSetResult {
  if (ws.conversations.some((c) => c.id === conversation.id)) return { ok: false, error: "ALREADY_OWNED" };
  const idle = ws.interruption === null && !ws.conversations.some((c) => c.state === "ACTIVE");
  const base = { ...conversation, handleTimeMs: 0 };
  if (idle) {
    const c: OwnedConversation = { ...base, state: "ACTIVE", activeSince: now, parkedAt: null };
    return {
      ok: true,
      state: { ...ws, conversations: [...ws.conversations, c] },
      events: [{ type: "ACTIVATED", conversationId: c.id, payload: { reason: "DELIVERED" } }],
    };
  }
  const c: OwnedConversation = { ...base, state: "PARKED", activeSince: null, parkedAt: now };
  return {
    ok: true,
    state: { ...ws, conversations: [...ws.conversations, c] },
    events: [
      {
        type: "PARKED",
        conversationId: c.id,
        payload: { reason: "DELIVERED", sessionMs: 0, handleTimeMs: 0 },
      },
    ],
  };
}

/**
 * Make `conversationId` the ACTIVE one, parking whatever is active (all of them, should
 * storage ever hold two). Refused during an interruption: email yields to the call
 * until `resume`.
 */
export function activate(
  ws: WorkingSet,
  conversationId: string,
  now: Date,
  reason: ActivationReason = "AGENT",
): WorkingSetResult {
  const target = ws.conversations.find((c) => c.id === conversationId);
  if (target === undefined) return { ok: false, error: "NOT_OWNED" };
  if (ws.interruption !== null) return { ok: false, error: "INTERRUPTED" };
  const othersActive = ws.conversations.some((c) => c.state === "ACTIVE" && c.id !== conversationId);
  if (target.state === "ACTIVE" && !othersActive) return { ok: true, state: ws, events: [] };
  const events: WorkingSetEvent[] = [];
  const conversations = ws.conversations.map((c) => {
    if (c.id === conversationId) return c.state === "ACTIVE" ? c : activated(c, now);
    if (c.state !== "ACTIVE") return c;
    const [next, event] = parked(c, now, "SWITCH");
    events.push(event);
    return next;
  });
  if (target.state !== "ACTIVE") events.push({ type: "ACTIVATED", conversationId, payload: { reason } });
  return { ok: true, state: { ...ws, conversations }, events };
}

/** Park `conversationId` (ownership kept); parking a parked one changes nothing. */
export function park(
  ws: WorkingSet,
  conversationId: string,
  now: Date,
  reason: ParkReason = "AGENT",
): WorkingSetResult {
  const target = ws.conversations.find((c) => c.id === conversationId);
  if (target === undefined) return { ok: false, error: "NOT_OWNED" };
  if (target.state === "PARKED") return { ok: true, state: ws, events: [] };
  const [next, event] = parked(target, now, reason);
  return {
    ok: true,
    state: { ...ws, conversations: ws.conversations.map((c) => (c.id === conversationId ? next : c)) },
    events: [event],
  };
}

/**
 * A higher-priority channel takes the agent: park the active conversation and remember
 * it. A second interrupt while one is running keeps the first memory (the voice platform
 * may retry), so resume returns to what the agent was really doing.
 */
export function interrupt(ws: WorkingSet, now: Date, reason: string | null = null): WorkingSetResult {
  if (ws.interruption !== null) return { ok: true, state: ws, events: [] };
  const active = ws.conversations.find((c) => c.state === "ACTIVE");
  const events: WorkingSetEvent[] = [
    { type: "INTERRUPTED", conversationId: active?.id ?? null, payload: { reason } },
  ];
  const conversations = ws.conversations.map((c) => {
    if (c.state !== "ACTIVE") return c;
    const [next, event] = parked(c, now, "INTERRUPT");
    events.push(event);
    return next;
  });
  return {
    ok: true,
    state: { ...ws, conversations, interruption: { since: now, conversationId: active?.id ?? null, reason } },
    events,
  };
}

/**
 * End the interruption and re-activate the remembered conversation if the agent still
 * owns it and nothing else became active meanwhile (a supervisor's move, say).
 */
export function resume(ws: WorkingSet, now: Date): WorkingSetResult {
  const interruption = ws.interruption;
  if (interruption === null) return { ok: true, state: ws, events: [] };
  const cleared: WorkingSet = { ...ws, interruption: null };
  const remembered =
    interruption.conversationId === null
      ? undefined
      : ws.conversations.find((c) => c.id === interruption.conversationId);
  const canReactivate = remembered !== undefined && !ws.conversations.some((c) => c.state === "ACTIVE");
  const resumed: WorkingSetEvent = {
    type: "RESUMED",
    conversationId: remembered?.id ?? null,
    payload: { interruptedMs: elapsedMs(interruption.since, now), reactivated: canReactivate },
  };
  if (!canReactivate) return { ok: true, state: cleared, events: [resumed] };
  const again = activate(cleared, remembered.id, now, "RESUMED");
  if (!again.ok) return again;
  return { ok: true, state: again.state, events: [resumed, ...again.events] };
}

/**
 * The conversation leaves the agent (resolved, transferred, returned to the queue);
 * the final handle time includes a running session.
 */
export function release(ws: WorkingSet, conversationId: string, now: Date): WorkingSetResult {
  const target = ws.conversations.find((c) => c.id === conversationId);
  if (target === undefined) return { ok: false, error: "NOT_OWNED" };
  const wasActive = target.state === "ACTIVE";
  return {
    ok: true,
    state: { ...ws, conversations: ws.conversations.filter((c) => c.id !== conversationId) },
    events: [
      {
        type: "RELEASED",
        conversationId,
        payload: { handleTimeMs: handleTimeAt(target, now), wasActive },
      },
    ],
  };
}

function bySlaThenPriority(a: OwnedConversation, b: OwnedConversation): number {
  const aSla = a.slaDueAt === null ? Number.POSITIVE_INFINITY : a.slaDueAt.getTime();
  const bSla = b.slaDueAt === null ? Number.POSITIVE_INFINITY : b.slaDueAt.getTime();
  if (aSla !== bSla) return aSla < bSla ? -1 : 1;
  if (a.priority !== b.priority) return b.priority - a.priority;
  return byParkedAt(a, b);
}

function byParkedAt(a: OwnedConversation, b: OwnedConversation): number {
  const aAt = a.parkedAt === null ? Number.POSITIVE_INFINITY : a.parkedAt.getTime();
  const bAt = b.parkedAt === null ? Number.POSITIVE_INFINITY : b.parkedAt.getTime();
  if (aAt !== bAt) return aAt < bAt ? -1 : 1;
  if (a.id === b.id) return 0;
  return a.id < b.id ? -1 : 1;
}

/**
 * Which parked conversation to present once nothing is active (the queue's option).
 * MOST_URGENT (the default): earliest SLA deadline, then higher priority, then parked
 * longest — an SLA clock keeps running while parked, so the nearest breach goes first.
 * OLDEST_PARKED: parked longest first (plain FIFO). NONE: the agent chooses. Nothing is
 * presented while a conversation is active or a call interrupts.
 */
export function presentNext(ws: WorkingSet, policy: PresentNextPolicy): string | null {
  if (policy === "NONE" || ws.interruption !== null) return null;
  if (ws.conversations.some((c) => c.state === "ACTIVE")) return null;
  const compare = policy === "MOST_URGENT" ? bySlaThenPriority : byParkedAt;
  let best: OwnedConversation | undefined;
  for (const c of ws.conversations) {
    if (best === undefined || compare(c, best) < 0) best = c;
  }
  return best?.id ?? null;
}

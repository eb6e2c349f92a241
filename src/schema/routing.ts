import { and, eq } from "drizzle-orm";
import { user } from "../db/schema/index.js";
import { type Conversation, conversationsByIds, getConversation } from "../engine/conversations.js";
import type { Presence } from "../engine/domain.js";
import { decodeCursor, type EventRow } from "../engine/event-hub.js";
import {
  acceptOffer,
  activateConversation,
  assignConversation,
  interruptAgent,
  parkConversation,
  pickConversation,
  rejectOffer,
  resumeAgent,
  returnToQueue,
  setPresence,
  transferConversation,
} from "../engine/routing/actions.js";
import {
  QUEUE_STATS_WINDOW_MS,
  type QueueStats,
  queueStats,
  watchQueueStats,
} from "../engine/routing/stats.js";
import { canSeeQueue, type Viewer } from "../engine/viewer.js";
import { builder } from "./builder.js";
import type { GraphQLContext } from "./context.js";
import { ConversationRef } from "./conversation.js";
import { asGraphQLErrors, standardErrors } from "./errors.js";
import { badCursor, EventRef } from "./event.js";
import { decodeId, decodeIds, encodeId } from "./ids.js";
import { PresenceEnum, UserRef } from "./viewer.js";

/** Routing in the API: offers, the working set, moves, presence, queue statistics and live streams. */

builder.objectFields(ConversationRef, (t) => ({
  offeredTo: t.field({
    type: UserRef,
    nullable: true,
    description: "The agent the conversation is offered to while OFFERED; null otherwise.",
    resolve: async (c, _a, ctx) => (c.offeredToId ? await loadUser(ctx, c.offeredToId) : null),
  }),
  offerExpiresAt: t.expose("offerExpiresAt", {
    type: "DateTime",
    nullable: true,
    description: "When the pending offer times out and returns to the queue.",
  }),
  assignedAt: t.expose("assignedAt", {
    type: "DateTime",
    nullable: true,
    description: "When the current owner received it.",
  }),
}));

async function loadUser(ctx: GraphQLContext, id: string) {
  const [row] = await ctx.engine.db
    .select()
    .from(user)
    .where(and(eq(user.id, id), eq(user.tenantId, ctx.viewer!.tenantId)));
  return row ?? null;
}

const QueueStatsRef = builder.objectRef<QueueStats>("QueueStats").implement({
  description: "A queue's live figures for wallboards.",
  fields: (t) => ({
    queueId: t.id({ description: "Global ID of the queue.", resolve: (s) => encodeId("Queue", s.queueId) }),
    waiting: t.exposeInt("waiting", { description: "Conversations waiting for an agent." }),
    oldestWaitSeconds: t.exposeInt("oldestWaitSeconds", {
      description: "How long the longest-waiting conversation has waited; 0 when none waits.",
    }),
    offered: t.exposeInt("offered", {
      description: "Conversations offered and not yet accepted or rejected.",
    }),
    assigned: t.exposeInt("assigned", { description: "Conversations owned by agents (ACTIVE or PARKED)." }),
    agentsAvailable: t.exposeInt("agentsAvailable", {
      description: "Members AVAILABLE, logged in and under their inbox limit.",
    }),
    agentsBusy: t.exposeInt("agentsBusy", {
      description: "Members logged in and BUSY, or AVAILABLE but at their inbox limit.",
    }),
    agentsAway: t.exposeInt("agentsAway", { description: "Members logged in and AWAY." }),
    agentsOffline: t.exposeInt("agentsOffline", { description: "Members OFFLINE or logged out." }),
    atRisk: t.exposeInt("atRisk", {
      description:
        "Open conversations (not RESOLVED or CLOSED) with an SLA target past its warning share and none breached. A PAUSED conversation's clock stands still: it stays at risk if it was when paused.",
    }),
    breached: t.exposeInt("breached", {
      description:
        "Open conversations with an SLA target breached: recorded, reached while the clock ran (due by now, or overdue when paused), or answered late. A deadline passing on the wall clock while PAUSED is no breach.",
    }),
    at: t.expose("at", { type: "DateTime", description: "When these figures were computed." }),
  }),
});

builder.queryField("queueStats", (t) =>
  t.withAuth({ authenticated: true }).field({
    type: QueueStatsRef,
    description: "Current figures of a queue the caller may see.",
    errors: { types: standardErrors },
    args: { queueId: t.arg.id({ required: true, description: "Global ID of the queue." }) },
    resolve: (_root, args, ctx) =>
      queueStats(ctx.engine, ctx.viewer, decodeId(String(args.queueId), "Queue")),
  }),
);

type ConvAction = (ctx: GraphQLContext["engine"], viewer: Viewer, id: string) => Promise<Conversation>;

function conversationMutation(name: string, description: string, action: ConvAction) {
  builder.mutationField(name, (t) =>
    t.withAuth({ authenticated: true }).field({
      type: ConversationRef,
      description,
      errors: { types: standardErrors },
      args: { conversationId: t.arg.id({ required: true, description: "Global ID of the conversation." }) },
      resolve: (_root, args, ctx) =>
        action(ctx.engine, ctx.viewer, decodeId(String(args.conversationId), "Conversation")),
    }),
  );
}

conversationMutation(
  "acceptOffer",
  "Accepts the offer made to the caller. It becomes ACTIVE when the caller has nothing active, else PARKED. " +
    "ConflictError OFFER_NOT_PENDING when it is not offered to the caller (taken, expired, rejected), OFFER_EXPIRED after the timeout.",
  acceptOffer,
);
conversationMutation(
  "rejectOffer",
  "Rejects the offer made to the caller: it returns to the queue and is offered to someone else, never again to the caller.",
  rejectOffer,
);
conversationMutation(
  "parkConversation",
  "Parks the caller's ACTIVE conversation (ownership kept, handle time stops). Owner, or a supervisor for the owner.",
  parkConversation,
);
conversationMutation(
  "activateConversation",
  "Makes a parked conversation the ACTIVE one; the current active one is parked. Refused (INTERRUPTED) during a voice interruption.",
  activateConversation,
);
conversationMutation(
  "pickConversation",
  "Takes a WAITING conversation from a queue the caller may see, even with others assigned; it becomes ACTIVE, parking the current one.",
  pickConversation,
);
conversationMutation(
  "returnConversationToQueue",
  "Gives an assigned conversation back to its queue (a fresh wait). Owner or supervisor.",
  returnToQueue,
);

const AgentInterruptionRef = builder
  .objectRef<{ agentId: string; conversationId: string | null }>("AgentInterruption")
  .implement({
    description: "The outcome of interruptAgent/resumeAgent.",
    fields: (t) => ({
      agentId: t.id({ description: "Global ID of the agent.", resolve: (r) => encodeId("User", r.agentId) }),
      conversation: t.field({
        type: ConversationRef,
        nullable: true,
        description: "The conversation parked by the interruption, or re-activated by the resume.",
        resolve: (r, _a, ctx) =>
          r.conversationId
            ? getConversation(ctx.engine, ctx.viewer!, r.conversationId).catch(() => null)
            : null,
      }),
    }),
  });

builder.mutationFields((t) => ({
  assignConversation: t.withAuth({ supervisor: true }).field({
    type: ConversationRef,
    description:
      "Assigns or reassigns a conversation to an agent, whatever the agent's limits (a supervisor decision). SUPERVISOR or ADMIN.",
    errors: { types: standardErrors },
    args: {
      conversationId: t.arg.id({ required: true, description: "Global ID of the conversation." }),
      agentId: t.arg.id({ required: true, description: "Global ID of the agent (User)." }),
    },
    resolve: (_root, args, ctx) =>
      assignConversation(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.conversationId), "Conversation"),
        decodeId(String(args.agentId), "User"),
      ),
  }),
  transferConversation: t.withAuth({ authenticated: true }).field({
    type: ConversationRef,
    description:
      "Moves a conversation to another queue, optionally replacing its required skills; it waits there. Needs the TRANSFER permission.",
    errors: { types: standardErrors },
    args: {
      conversationId: t.arg.id({ required: true, description: "Global ID of the conversation." }),
      queueId: t.arg.id({ required: true, description: "Global ID of the target queue." }),
      requiredSkillIds: t.arg.idList({
        description: "Skills the target requires (global IDs, at most 20); omitted = keep the current ones.",
      }),
    },
    resolve: (_root, args, ctx) =>
      transferConversation(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.conversationId), "Conversation"),
        decodeId(String(args.queueId), "Queue"),
        args.requiredSkillIds ? decodeIds(args.requiredSkillIds.map(String), "Skill") : null,
      ),
  }),
  setPresence: t.withAuth({ authenticated: true }).field({
    type: UserRef,
    description:
      "Sets the caller's presence (and logged-in flag). Routing runs at once for the caller's queues. OFFLINE logs out unless loggedIn is given.",
    errors: { types: standardErrors },
    args: {
      presence: t.arg({ type: PresenceEnum, required: true, description: "The new presence." }),
      reason: t.arg.string({
        description: "Why busy or away (at most 200 characters); ignored for AVAILABLE.",
      }),
      loggedIn: t.arg.boolean({ description: "Logged-in flag; omitted = logged in unless OFFLINE." }),
    },
    resolve: (_root, args, ctx) =>
      setPresence(ctx.engine, ctx.viewer, {
        presence: args.presence as Presence,
        reason: args.reason,
        loggedIn: args.loggedIn,
      }),
  }),
  interruptAgent: t.withAuth({ authenticated: true }).field({
    type: AgentInterruptionRef,
    description:
      "For a voice platform: the agent takes a call. Its ACTIVE email is parked and nothing is activated until resumeAgent. The agent itself or a supervisor.",
    errors: { types: standardErrors },
    args: {
      agentId: t.arg.id({ required: true, description: "Global ID of the agent (User)." }),
      reason: t.arg.string({ description: "Free text, e.g. the call id; one line, at most 200 characters." }),
    },
    resolve: (_root, args, ctx) =>
      interruptAgent(ctx.engine, ctx.viewer, decodeId(String(args.agentId), "User"), args.reason ?? null),
  }),
  resumeAgent: t.withAuth({ authenticated: true }).field({
    type: AgentInterruptionRef,
    description:
      "Ends an interruption: the email parked by it becomes ACTIVE again if still the agent's and parked. The agent itself or a supervisor.",
    errors: { types: standardErrors },
    args: { agentId: t.arg.id({ required: true, description: "Global ID of the agent (User)." }) },
    resolve: (_root, args, ctx) =>
      resumeAgent(ctx.engine, ctx.viewer, decodeId(String(args.agentId), "User")),
  }),
}));

interface InboxUpdate {
  event: EventRow;
  /** Loads the conversations of the whole wake-up batch once, on first use (only if selected). */
  conversation: () => Promise<Conversation | null>;
}

const InboxUpdateRef = builder.objectRef<InboxUpdate>("InboxUpdate").implement({
  description: "A change to the viewer's inbox or offers: the event and the conversation as it is now.",
  fields: (t) => ({
    event: t.field({ type: EventRef, description: "What happened.", resolve: (u) => u.event }),
    conversation: t.field({
      type: ConversationRef,
      nullable: true,
      description: "The conversation concerned, as now visible to the viewer; null for agent-level events.",
      resolve: (u) => u.conversation(),
    }),
  }),
});

builder.subscriptionFields((t) => ({
  queueStats: t.withAuth({ authenticated: true }).field({
    type: QueueStatsRef,
    description: `A queue's figures: sent at once, then after events that can change them (queue work, SLA warnings and breaches, agent presence). A burst of events yields one update per ${QUEUE_STATS_WINDOW_MS} ms at most, and the last update always reflects the last event. NotFound for a queue the caller may not see.`,
    args: { queueId: t.arg.id({ required: true, description: "Global ID of the queue." }) },
    subscribe: (_root, args, ctx) =>
      // decodeId inside: a malformed ID is NOT_FOUND like an unknown one, not a masked error.
      asGraphQLErrors(() => watchQueueStats(ctx.engine, ctx.viewer, decodeId(String(args.queueId), "Queue"))),
    resolve: (s) => s,
  }),
  myInbox: t.withAuth({ authenticated: true }).field({
    type: InboxUpdateRef,
    description:
      "The caller's inbox and offers: every event naming the caller as agent (offered, assigned, accepted, rejected, expired, parked, activated, unassigned, interrupted), with the conversation.",
    args: {
      after: t.arg.string({ description: "Resume after this event cursor; omitted = live from now." }),
    },
    subscribe: async (_root, args, ctx) => {
      const viewer = ctx.viewer;
      const engine = ctx.engine;
      const from = args.after ? decodeCursor(args.after) : await engine.hub.head(viewer.tenantId);
      if (!from) throw badCursor();
      const userId = viewer.userId;
      const batches = engine.hub.subscribeBatches(viewer.tenantId, (e) => e.agentId === userId, {
        from,
        agentId: userId,
      });
      const updates = (async function* () {
        try {
          for await (const batch of batches) {
            // One query for every conversation the batch names, and only when a client selects it.
            let loaded: Promise<Map<string, Conversation>> | null = null;
            const load = () => {
              loaded ??= conversationsByIds(
                engine,
                viewer,
                batch.flatMap((e) => (e.conversationId ? [e.conversationId] : [])),
              );
              return loaded;
            };
            for (const e of batch) {
              const id = e.conversationId;
              yield { event: e, conversation: async () => (id ? ((await load()).get(id) ?? null) : null) };
            }
          }
        } finally {
          await batches.return?.();
        }
      })();
      // A generator's `return()` runs its `finally` only once it has started, and only after
      // a pending `next()`: a subscription completed early or while waiting would leave its
      // hub subscriber (and its queue) behind. End the hub's stream directly.
      type Update = { event: EventRow; conversation: () => Promise<Conversation | null> };
      const iterator: AsyncIterableIterator<Update> = {
        [Symbol.asyncIterator]: () => iterator,
        next: () => updates.next() as Promise<IteratorResult<Update>>,
        async return() {
          await batches.return?.();
          return (await updates.return(undefined)) as IteratorResult<Update>;
        },
      };
      return iterator;
    },
    resolve: (u) => u,
  }),
  conversationEvents: t.withAuth({ authenticated: true }).field({
    type: EventRef,
    description:
      "A conversation's events in commit order. Pass the last cursor as `after` to resume without gaps or repeats; `0.0` replays from the start. NotFound outside the caller's queues.",
    args: {
      conversationId: t.arg.id({ required: true, description: "Global ID of the conversation." }),
      after: t.arg.string({ description: "Resume after this cursor; omitted = live from now." }),
    },
    subscribe: async (_root, args, ctx) => {
      const viewer = ctx.viewer;
      const id = asGraphQLErrors(() => decodeId(String(args.conversationId), "Conversation"));
      await asGraphQLErrors(() => getConversation(ctx.engine, viewer, id));
      const from = args.after ? decodeCursor(args.after) : await ctx.engine.hub.head(viewer.tenantId);
      if (!from) throw badCursor();
      return ctx.engine.hub.subscribe(viewer.tenantId, (e) => e.conversationId === id && canSee(viewer, e), {
        from,
        conversationId: id,
      });
    },
    resolve: (e) => e,
  }),
}));

/**
 * A subscription has no result union to carry a typed error, and a plain throw is masked
 * as "Unexpected error": an unknown or invisible object is reported as a GraphQL error
 * with code NOT_FOUND (same answer for "does not exist" and "not yours").
 */
function canSee(viewer: Viewer, e: EventRow): boolean {
  return canSeeQueue(viewer, e.queueId) || e.agentId === viewer.userId;
}

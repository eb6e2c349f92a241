import { GraphQLError } from "graphql";
import { decodeCursor, type EventRow, encodeCursor } from "../engine/event-hub.js";
import { agentsOfQueues, canSeeEvent } from "../engine/viewer.js";
import { builder } from "./builder.js";
import { encodeId } from "./ids.js";

export const EventRef = builder.objectRef<EventRow>("Event").implement({
  description: "One entry of the append-only event log: the timeline and the live streams are made of these.",
  fields: (t) => ({
    id: t.id({
      description: "The event's number (monotonic per insert, not per commit).",
      resolve: (e) => String(e.id),
    }),
    cursor: t.string({
      description: "Stream position of this event; pass it as `after` to resume exactly after it.",
      resolve: (e) => encodeCursor(e),
    }),
    type: t.exposeString("type", { description: "What happened, e.g. routing.assigned, message.received." }),
    conversationId: t.id({
      nullable: true,
      description: "Global ID of the conversation it concerns, if any.",
      resolve: (e) => (e.conversationId ? encodeId("Conversation", e.conversationId) : null),
    }),
    queueId: t.id({
      nullable: true,
      description: "Global ID of the queue it concerns, if any.",
      resolve: (e) => (e.queueId ? encodeId("Queue", e.queueId) : null),
    }),
    agentId: t.id({
      nullable: true,
      description: "Global ID of the agent it concerns, if any.",
      resolve: (e) => (e.agentId ? encodeId("User", e.agentId) : null),
    }),
    actorType: t.exposeString("actorType", { description: "SYSTEM, USER or CONTACT." }),
    actorId: t.id({
      nullable: true,
      description: "Global ID of the user who acted, for USER actors.",
      resolve: (e) => (e.actorId && e.actorType === "USER" ? encodeId("User", e.actorId) : null),
    }),
    payload: t.field({
      type: "JSON",
      description: "Details; their shape depends on `type`.",
      resolve: (e) => e.payload,
    }),
    occurredAt: t.expose("occurredAt", { type: "DateTime", description: "When it happened (engine clock)." }),
  }),
});

builder.subscriptionField("tenantEvents", (t) =>
  t.withAuth({ supervisor: true }).field({
    type: EventRef,
    description:
      "Every event of the caller's tenant in the queues the caller may see, in commit order. SUPERVISOR or ADMIN. " +
      "Pass the `cursor` of the last event received as `after` to resume after a reconnect without missing or repeating events.",
    args: {
      after: t.arg.string({ description: "Resume after this cursor; omitted = live from now." }),
    },
    subscribe: async (_root, args, ctx) => {
      const viewer = ctx.viewer;
      const from = args.after ? decodeCursor(args.after) : await ctx.engine.hub.head(viewer.tenantId);
      if (!from) throw badCursor();
      // A supervisor limited to some queues follows their agents (read once, at subscribe).
      const agents = viewer.queueIds
        ? await agentsOfQueues(ctx.engine.db, viewer.tenantId, [...viewer.queueIds])
        : null;
      return ctx.engine.hub.subscribe(viewer.tenantId, (e) => canSeeEvent(viewer, e, agents), { from });
    },
    resolve: (e) => e,
  }),
);

/** A malformed or impossible `after` cursor: the client's input, said so. */
export function badCursor(): GraphQLError {
  return new GraphQLError("after is not a valid event cursor", { extensions: { code: "BAD_USER_INPUT" } });
}

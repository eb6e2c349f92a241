import type { ConversationStatus } from "../engine/domain.js";
import { setConversationStatus } from "../engine/lifecycle.js";
import { allowedTransitions } from "../engine/time/lifecycle.js";
import { builder } from "./builder.js";
import { ConversationRef, ConversationStatusEnum } from "./conversation.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";

builder.objectField(ConversationRef, "allowedStatuses", (t) =>
  t.field({
    type: [ConversationStatusEnum],
    description:
      "Statuses the caller may move this conversation to now (for a status menu); CLOSED → REOPENED only for supervisors.",
    resolve: (c, _a, ctx) => allowedTransitions(c.status, ctx.viewer!.role),
  }),
);

builder.mutationField("setConversationStatus", (t) =>
  t.withAuth({ authenticated: true }).field({
    type: ConversationRef,
    description:
      "Moves a conversation to another status (SPEC §4) as the caller: agents and supervisors in their queues. An " +
      "illegal move (e.g. NEW → PAUSED, anything → NEW, CLOSED → REOPENED by an agent) returns ConflictError with code " +
      "ILLEGAL_TRANSITION. RESOLVED and CLOSED free the agent and leave the queue; moving a finished conversation " +
      "back puts it in its queue again. Writes conversation.status_changed with the caller as actor.",
    errors: { types: standardErrors },
    args: {
      conversationId: t.arg.id({ required: true, description: "Global ID of the conversation." }),
      status: t.arg({ type: ConversationStatusEnum, required: true, description: "The new status." }),
    },
    resolve: (_root, args, ctx) =>
      setConversationStatus(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.conversationId), "Conversation"),
        args.status,
      ),
  }),
);

function shorthand(name: string, to: ConversationStatus, description: string) {
  builder.mutationField(name, (t) =>
    t.withAuth({ authenticated: true }).field({
      type: ConversationRef,
      description,
      errors: { types: standardErrors },
      args: { conversationId: t.arg.id({ required: true, description: "Global ID of the conversation." }) },
      resolve: (_root, args, ctx) =>
        setConversationStatus(
          ctx.engine,
          ctx.viewer,
          decodeId(String(args.conversationId), "Conversation"),
          to,
        ),
    }),
  );
}

shorthand(
  "resolveConversation",
  "RESOLVED",
  "Shorthand for setConversationStatus(status: RESOLVED): the work is done; the SLA clock stops; the RESOLVED → CLOSED timer starts.",
);
shorthand(
  "closeConversation",
  "CLOSED",
  "Shorthand for setConversationStatus(status: CLOSED). New mail within the reopen window reopens it.",
);
shorthand(
  "reopenConversation",
  "REOPENED",
  "Shorthand for setConversationStatus(status: REOPENED): SUPERVISOR or ADMIN only, from CLOSED, whatever the reopen window.",
);

import { type ConversationSla, conversationSla } from "../engine/sla.js";
import type { SlaTargetState } from "../engine/time/sla.js";
import { builder } from "./builder.js";
import { ConversationRef } from "./conversation.js";
import { encodeId } from "./ids.js";

const SlaTargetEnum = builder.enumType("SlaTarget", {
  description: "FIRST_RESPONSE, NEXT_RESPONSE (after each unanswered customer message) or RESOLUTION.",
  values: ["FIRST_RESPONSE", "NEXT_RESPONSE", "RESOLUTION"] as const,
});
const SlaPhaseEnum = builder.enumType("SlaPhase", {
  description: "RUNNING or PAUSED while pending (clock counting or stopped); MET or MISSED once done.",
  values: ["RUNNING", "PAUSED", "MET", "MISSED"] as const,
});
const SlaPolicySourceEnum = builder.enumType("SlaPolicySource", {
  description: "Where the effective SLA policy came from: the queue, the address, or the tenant default.",
  values: ["QUEUE", "ADDRESS", "TENANT", "NONE"] as const,
});

const SlaTargetStateRef = builder.objectRef<SlaTargetState>("SlaTargetState").implement({
  description: "One SLA target of a conversation, measured in business minutes of its calendar.",
  fields: (t) => ({
    target: t.field({ type: SlaTargetEnum, description: "Which target.", resolve: (s) => s.target }),
    phase: t.field({ type: SlaPhaseEnum, description: "Pending or done, and how.", resolve: (s) => s.phase }),
    targetMinutes: t.exposeInt("targetMinutes", { description: "The target in business minutes." }),
    dueAt: t.expose("dueAt", {
      type: "DateTime",
      nullable: true,
      description:
        "When it falls due; null while the clock is paused, once done, or when already overdue since an earlier period.",
    }),
    remainingBusinessMinutes: t.float({
      description: "Business minutes left; negative once overdue.",
      resolve: (s) => Math.round(s.remainingBusinessMinutes * 100) / 100,
    }),
    elapsedBusinessMinutes: t.float({
      description: "Business minutes used so far.",
      resolve: (s) => Math.round(s.elapsedBusinessMinutes * 100) / 100,
    }),
    warned: t.exposeBoolean("warned", { description: "The policy's warning share has been used up." }),
    breached: t.exposeBoolean("breached", { description: "The target was (or is being) missed." }),
  }),
});

const ConversationSlaRef = builder.objectRef<ConversationSla>("ConversationSla").implement({
  description:
    "A conversation's SLA standing now (SPEC §2): per target, counted in business hours, paused while PAUSED or RESOLVED.",
  fields: (t) => ({
    policyId: t.id({
      description: "Global ID of the policy applied.",
      resolve: (s) => encodeId("SlaPolicy", s.policyId),
    }),
    policySource: t.field({
      type: SlaPolicySourceEnum,
      description: "Whether the queue, the address or the tenant default supplied the policy.",
      resolve: (s) => s.policySource,
    }),
    breached: t.exposeBoolean("breached", { description: "Any target breached at some point." }),
    firstResponse: t.field({
      type: SlaTargetStateRef,
      nullable: true,
      description: "First-response target; null if the policy has none.",
      resolve: (s) => s.firstResponse,
    }),
    nextResponse: t.field({
      type: SlaTargetStateRef,
      nullable: true,
      description: "Next-response target; null unless a customer message awaits a reply after the first one.",
      resolve: (s) => s.nextResponse,
    }),
    resolution: t.field({
      type: SlaTargetStateRef,
      nullable: true,
      description: "Resolution target; null if the policy has none.",
      resolve: (s) => s.resolution,
    }),
  }),
});

builder.objectField(ConversationRef, "sla", (t) =>
  t.field({
    type: ConversationSlaRef,
    nullable: true,
    description: "SLA state at the server's now; null when no SLA policy applies.",
    resolve: (c, _a, ctx) => conversationSla(ctx.engine, c),
  }),
);

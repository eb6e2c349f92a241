import { loadEmailAddresses } from "../engine/config/email-addresses.js";
import {
  addQueueMembers,
  archiveQueue,
  createQueue,
  type QueueInput as EngineInput,
  getQueue,
  listQueues,
  loadQueueAddresses,
  loadQueueMembers,
  type QueueMembers,
  removeQueueMembers,
  setQueueAddresses,
  updateQueue,
} from "../engine/config/queues.js";
import { PREFERRED_AGENT_MODES, QUEUE_ORDERS, ROUTING_STRATEGIES } from "../engine/domain.js";
import { builder } from "./builder.js";
import { EmailAddressRef, QueueRef } from "./channel-refs.js";
import { standardErrors } from "./errors.js";
import { decodeId, decodeRefId, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";
import { TeamRef } from "./team.js";
import { PresenceEnum, UserRef } from "./viewer.js";

export const RoutingStrategyEnum = builder.enumType("RoutingStrategy", {
  description:
    "How a queue picks an agent (SPEC §8): LEAST_ACTIVE (fewest active conversations, then least recently assigned), " +
    "PROFICIENCY (highest skill level), PREFERRED_AGENT (the contact's last agent, then proficiency), LEAST_BUSY, MOST_BUSY.",
  values: ROUTING_STRATEGIES,
});
export const PreferredAgentModeEnum = builder.enumType("PreferredAgentMode", {
  description:
    "With PREFERRED_AGENT: wait for the preferred agent while they are offline, or while they are busy, up to the timeout.",
  values: PREFERRED_AGENT_MODES,
});
export const QueueOrderEnum = builder.enumType("QueueOrder", {
  description:
    "Which waiting conversation goes first: PRIORITY_SCORE (priority + minutes waiting) or SLA_REMAINING (least SLA time left).",
  values: QUEUE_ORDERS,
});

const idOrNull = (type: string, id: string | null) => (id ? encodeId(type, id) : null);

const QueueMembersRef = builder.objectRef<QueueMembers>("QueueMembers").implement({
  description:
    "Who works a queue: agents added one by one, and whole teams (every active agent of the team).",
  fields: (t) => ({
    agents: t.field({
      type: [UserRef],
      description: "Users added directly, by name.",
      resolve: (m) => m.agents,
    }),
    teams: t.field({
      type: [TeamRef],
      description: "Teams added as a whole, by name.",
      resolve: (m) => m.teams,
    }),
  }),
});

builder.node(QueueRef, {
  description:
    "A queue: where conversations wait and how they are routed to its members. Supervisors and agents see only the queues " +
    "of their access profile (or, without one, agents the queues they are members of); only ADMIN changes them.",
  id: { resolve: (q) => q.id, description: "Global ID." },
  loadOne: loadVisible(QueueRef, getQueue),
  fields: (t) => ({
    name: t.exposeString("name", {
      description: "Unique per tenant among active queues (case-insensitive).",
    }),
    description: t.exposeString("description", { description: "Free text for admins and supervisors." }),
    members: t.loadable({
      type: QueueMembersRef,
      description: "Agents and teams serving this queue.",
      load: (ids: string[], ctx) => loadQueueMembers(ctx.engine, ctx.viewer!.tenantId, ids),
      resolve: (q) => q.id,
    }),
    addresses: t.loadableList({
      type: EmailAddressRef,
      description: "Addresses assigned to the queue (used inbound and outbound), by address.",
      load: (ids: string[], ctx) => loadQueueAddresses(ctx.engine, ctx.viewer!.tenantId, ids),
      resolve: (q) => q.id,
    }),
    defaultAddress: t.loadable({
      type: EmailAddressRef,
      nullable: true,
      description: "Address replies go out from by default; never one on an outbound-only account.",
      load: (ids: string[], ctx) => loadEmailAddresses(ctx.engine, ctx.viewer!.tenantId, ids),
      resolve: (q) => q.defaultAddressId,
    }),
    calendarId: t.id({
      nullable: true,
      description: "Global ID (type BusinessCalendar) of the business-hours calendar; null = always open.",
      resolve: (q) => idOrNull("BusinessCalendar", q.calendarId),
    }),
    strategy: t.field({
      type: RoutingStrategyEnum,
      description: "Routing strategy.",
      resolve: (q) => q.strategy,
    }),
    preferredAgentMode: t.field({
      type: PreferredAgentModeEnum,
      description:
        "With PREFERRED_AGENT: what the preferred agent may be while the conversation waits for them.",
      resolve: (q) => q.preferredAgentMode,
    }),
    preferredAgentTimeoutSeconds: t.exposeInt("preferredAgentTimeoutSeconds", {
      description:
        "How long to wait for the preferred agent (1–5,256,000 s) before falling back to proficiency.",
    }),
    order: t.field({
      type: QueueOrderEnum,
      description: "Order of waiting conversations.",
      resolve: (q) => q.order,
    }),
    defaultPriority: t.exposeInt("defaultPriority", {
      description: "Priority (0–1,000) of conversations that get none from their address or rules.",
    }),
    autoAssign: t.exposeBoolean("autoAssign", {
      description: "Whether the engine assigns/offers conversations automatically.",
    }),
    dailyAutoAssignLimit: t.exposeInt("dailyAutoAssignLimit", {
      nullable: true,
      description:
        "Most conversations this queue auto-assigns (or offers) to one agent per day, counted per agent and queue, reset at midnight in the tenant's time zone; null = no limit.",
    }),
    autoAssignOnlyInBusinessHours: t.exposeBoolean("autoAssignOnlyInBusinessHours", {
      description: "Auto-assign only while the calendar is open.",
    }),
    autoAssignOnlyLoggedIn: t.exposeBoolean("autoAssignOnlyLoggedIn", {
      description: "Auto-assign only to logged-in agents.",
    }),
    routablePresences: t.field({
      type: [PresenceEnum],
      description: "Presences that receive work from this queue (at least one).",
      resolve: (q) => q.routablePresences,
    }),
    offerRequired: t.exposeBoolean("offerRequired", {
      description: "Agents must accept or reject each conversation offered.",
    }),
    offerTimeoutSeconds: t.exposeInt("offerTimeoutSeconds", {
      description: "Seconds (5–86,400) before an unanswered offer goes to the next agent.",
    }),
    manualParkingAllowed: t.exposeBoolean("manualParkingAllowed", {
      description: "Agents may park conversations themselves.",
    }),
    autoParking: t.exposeBoolean("autoParking", {
      description: "Deliver straight into agents' inboxes up to their limit.",
    }),
    autoParkSpacingSeconds: t.exposeInt("autoParkSpacingSeconds", {
      description: "Minimum seconds (0–3,600) between two auto-parked deliveries to one agent.",
    }),
    presentNextWhenAllParked: t.exposeBoolean("presentNextWhenAllParked", {
      description: "When all of an agent's conversations are parked, present the next one.",
    }),
    customerResponseCountdownMinutes: t.exposeInt("customerResponseCountdownMinutes", {
      nullable: true,
      description:
        "Unassign when the customer has not answered within this many minutes (1–525,600); null = off.",
    }),
    slaPolicyId: t.id({
      nullable: true,
      description: "Global ID (type SlaPolicy) overriding the tenant default; null = no override.",
      resolve: (q) => idOrNull("SlaPolicy", q.slaPolicyId),
    }),
    signatureId: t.id({
      nullable: true,
      description: "Global ID (type Signature) of the queue's signature; null = none.",
      resolve: (q) => idOrNull("Signature", q.signatureId),
    }),
    autoReplyTemplateId: t.id({
      nullable: true,
      description:
        "Global ID (type AutoReplyTemplate) of the auto-reply; required while any autoReplyOn* is on.",
      resolve: (q) => idOrNull("AutoReplyTemplate", q.autoReplyTemplateId),
    }),
    autoReplyOnNew: t.exposeBoolean("autoReplyOnNew", {
      description: "Auto-reply to the first mail of a conversation.",
    }),
    autoReplyOnClosed: t.exposeBoolean("autoReplyOnClosed", {
      description: "Auto-reply to mail on a CLOSED conversation (which reopens).",
    }),
    autoReplyOnPaused: t.exposeBoolean("autoReplyOnPaused", {
      description: "Auto-reply to mail on a PAUSED conversation.",
    }),
    autoReplyOnIdle: t.exposeBoolean("autoReplyOnIdle", {
      description: "Auto-reply to mail on an ACTIVE conversation idle for autoReplyIdleDays.",
    }),
    autoReplyIdleDays: t.exposeInt("autoReplyIdleDays", {
      description: "Idle days (1–365) for autoReplyOnIdle.",
    }),
    autoReplyAddress: t.loadable({
      type: EmailAddressRef,
      nullable: true,
      description: "Sender of auto-replies (may be on an outbound-only account); null = the default address.",
      load: (ids: string[], ctx) => loadEmailAddresses(ctx.engine, ctx.viewer!.tenantId, ids),
      resolve: (q) => q.autoReplyAddressId,
    }),
    archivedAt: t.expose("archivedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once archived.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const QueueInput = builder.inputType("QueueInput", {
  description:
    "Settings of a queue. On update, omitted fields stay unchanged; null clears an optional one. Referenced objects must exist " +
    "in the tenant (field errors otherwise).",
  fields: (t) => ({
    name: t.string({ description: "Required on create. 1–100 characters, unique among active queues." }),
    description: t.string({ description: "Up to 2,000 characters." }),
    calendarId: t.id({ description: "Global ID of a BusinessCalendar; null = always open." }),
    defaultAddressId: t.id({ description: "Global ID of an EmailAddress not on an outbound-only account." }),
    strategy: t.field({ type: RoutingStrategyEnum, description: "Default LEAST_ACTIVE." }),
    preferredAgentMode: t.field({ type: PreferredAgentModeEnum, description: "Default WAIT_WHILE_OFFLINE." }),
    preferredAgentTimeoutSeconds: t.int({ description: "1–5,256,000; default 3,600." }),
    order: t.field({ type: QueueOrderEnum, description: "Default PRIORITY_SCORE." }),
    defaultPriority: t.int({ description: "0–1,000; default 0." }),
    autoAssign: t.boolean({ description: "Default true." }),
    dailyAutoAssignLimit: t.int({
      description: "1–100,000 automatic deliveries from this queue per agent and day; null = no limit.",
    }),
    autoAssignOnlyInBusinessHours: t.boolean({ description: "Default false; true requires calendarId." }),
    autoAssignOnlyLoggedIn: t.boolean({ description: "Default true." }),
    routablePresences: t.field({ type: [PresenceEnum], description: "Non-empty; default [AVAILABLE]." }),
    offerRequired: t.boolean({ description: "Default false." }),
    offerTimeoutSeconds: t.int({ description: "5–86,400; default 120." }),
    manualParkingAllowed: t.boolean({ description: "Default true." }),
    autoParking: t.boolean({ description: "Default false." }),
    autoParkSpacingSeconds: t.int({ description: "0–3,600; default 30." }),
    presentNextWhenAllParked: t.boolean({ description: "Default false." }),
    customerResponseCountdownMinutes: t.int({ description: "1–525,600; null = off." }),
    slaPolicyId: t.id({ description: "Global ID of an SlaPolicy; null = tenant default." }),
    signatureId: t.id({ description: "Global ID of a Signature; null = none." }),
    autoReplyTemplateId: t.id({
      description: "Global ID of an AutoReplyTemplate; required while an auto-reply is on.",
    }),
    autoReplyOnNew: t.boolean({ description: "Default false." }),
    autoReplyOnClosed: t.boolean({ description: "Default false." }),
    autoReplyOnPaused: t.boolean({ description: "Default false." }),
    autoReplyOnIdle: t.boolean({ description: "Default false." }),
    autoReplyIdleDays: t.int({ description: "1–365; default 15." }),
    autoReplyAddressId: t.id({
      description: "Global ID of the EmailAddress auto-replies are sent from; may be outbound-only.",
    }),
  }),
});

const nn = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);
const ref = (v: string | number | null | undefined, type: string) =>
  decodeRefId(v === null || v === undefined ? v : String(v), type);

function queueInput(i: typeof QueueInput.$inferInput): EngineInput {
  return {
    name: nn(i.name),
    description: nn(i.description),
    calendarId: ref(i.calendarId, "BusinessCalendar"),
    defaultAddressId: ref(i.defaultAddressId, "EmailAddress"),
    strategy: nn(i.strategy),
    preferredAgentMode: nn(i.preferredAgentMode),
    preferredAgentTimeoutSeconds: nn(i.preferredAgentTimeoutSeconds),
    order: nn(i.order),
    defaultPriority: nn(i.defaultPriority),
    autoAssign: nn(i.autoAssign),
    dailyAutoAssignLimit: i.dailyAutoAssignLimit,
    autoAssignOnlyInBusinessHours: nn(i.autoAssignOnlyInBusinessHours),
    autoAssignOnlyLoggedIn: nn(i.autoAssignOnlyLoggedIn),
    // null is "no presence at all", which validation refuses like an empty list.
    routablePresences: i.routablePresences === null ? [] : i.routablePresences,
    offerRequired: nn(i.offerRequired),
    offerTimeoutSeconds: nn(i.offerTimeoutSeconds),
    manualParkingAllowed: nn(i.manualParkingAllowed),
    autoParking: nn(i.autoParking),
    autoParkSpacingSeconds: nn(i.autoParkSpacingSeconds),
    presentNextWhenAllParked: nn(i.presentNextWhenAllParked),
    customerResponseCountdownMinutes: i.customerResponseCountdownMinutes,
    slaPolicyId: ref(i.slaPolicyId, "SlaPolicy"),
    signatureId: ref(i.signatureId, "Signature"),
    autoReplyTemplateId: ref(i.autoReplyTemplateId, "AutoReplyTemplate"),
    autoReplyOnNew: nn(i.autoReplyOnNew),
    autoReplyOnClosed: nn(i.autoReplyOnClosed),
    autoReplyOnPaused: nn(i.autoReplyOnPaused),
    autoReplyOnIdle: nn(i.autoReplyOnIdle),
    autoReplyIdleDays: nn(i.autoReplyIdleDays),
    autoReplyAddressId: ref(i.autoReplyAddressId, "EmailAddress"),
  };
}

const refs = (ids: readonly (string | number)[] | null | undefined, type: string) =>
  (ids ?? []).map((id) => decodeRefId(String(id), type)!);

builder.queryFields((t) => ({
  queues: t.withAuth({ authenticated: true }).connection({
    type: QueueRef,
    description:
      "Queues the caller may see, ordered by name. ADMIN sees all; others per access profile or membership.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived queues (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listQueues(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createQueue: t.withAuth({ admin: true }).field({
    type: QueueRef,
    description: "Creates a queue. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({ type: QueueInput, required: true, description: "The new queue; name is required." }),
    },
    resolve: (_root, { input }, ctx) => createQueue(ctx.engine, ctx.viewer, queueInput(input)),
  }),
  updateQueue: t.withAuth({ admin: true }).field({
    type: QueueRef,
    description: "Changes a queue's settings. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The queue's global ID." }),
      input: t.arg({ type: QueueInput, required: true, description: "Settings to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateQueue(ctx.engine, ctx.viewer, decodeId(String(id), "Queue"), queueInput(input)),
  }),
  archiveQueue: t.withAuth({ admin: true }).field({
    type: QueueRef,
    description: "Archives a queue (history keeps referring to it; its name becomes free). ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The queue's global ID." }) },
    resolve: (_root, { id }, ctx) => archiveQueue(ctx.engine, ctx.viewer, decodeId(String(id), "Queue")),
  }),
  addQueueMembers: t.withAuth({ admin: true }).field({
    type: QueueRef,
    description:
      "Adds agents and/or whole teams to a queue; existing members are kept (idempotent). ADMIN only.",
    errors: { types: standardErrors },
    args: {
      queueId: t.arg.id({ required: true, description: "The queue's global ID." }),
      userIds: t.arg.idList({
        description: "Global IDs of users to add (field errors `userIds[i]` for unknown ones).",
      }),
      teamIds: t.arg.idList({
        description: "Global IDs of teams to add (field errors `teamIds[i]` for unknown ones).",
      }),
    },
    resolve: (_root, args, ctx) =>
      addQueueMembers(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.queueId), "Queue"),
        refs(args.userIds, "User"),
        refs(args.teamIds, "Team"),
      ),
  }),
  removeQueueMembers: t.withAuth({ admin: true }).field({
    type: QueueRef,
    description:
      "Removes agents and/or teams from a queue; IDs that are not members are ignored. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      queueId: t.arg.id({ required: true, description: "The queue's global ID." }),
      userIds: t.arg.idList({ description: "Global IDs of users to remove." }),
      teamIds: t.arg.idList({ description: "Global IDs of teams to remove." }),
    },
    resolve: (_root, args, ctx) =>
      removeQueueMembers(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.queueId), "Queue"),
        refs(args.userIds, "User"),
        refs(args.teamIds, "Team"),
      ),
  }),
  setQueueAddresses: t.withAuth({ admin: true }).field({
    type: QueueRef,
    description: "Replaces the set of addresses assigned to a queue (an empty list removes all). ADMIN only.",
    errors: { types: standardErrors },
    args: {
      queueId: t.arg.id({ required: true, description: "The queue's global ID." }),
      addressIds: t.arg.idList({
        required: true,
        description: "Global IDs of the tenant's email addresses.",
      }),
    },
    resolve: (_root, args, ctx) =>
      setQueueAddresses(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.queueId), "Queue"),
        refs(args.addressIds, "EmailAddress"),
      ),
  }),
}));

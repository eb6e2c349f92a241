import {
  archiveEmailAddress,
  createEmailAddress,
  type EmailAddressInput as EngineInput,
  getEmailAddress,
  listEmailAddresses,
  updateEmailAddress,
} from "../engine/config/email-addresses.js";
import { loadMailAccounts } from "../engine/config/mail-accounts.js";
import { loadQueues } from "../engine/config/queues.js";
import {
  HISTORY_POLICIES,
  SIGNATURE_POLICIES,
  SPAM_ROUTINGS,
  THREADING_MODES,
  TICKET_DELIMITERS,
  TICKET_PLACEMENTS,
} from "../engine/domain.js";
import { builder } from "./builder.js";
import { EmailAddressRef, QueueRef } from "./channel-refs.js";
import { standardErrors } from "./errors.js";
import { decodeId, decodeRefId, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { MailAccountRef } from "./mail-account.js";
import { offsetConnection } from "./paging.js";

export const SpamRoutingEnum = builder.enumType("SpamRouting", {
  description:
    "What happens to mail flagged as spam: QUEUE routes it to `spamQueue`, TAG routes it normally with a spam tag, DROP discards it (recorded, not delivered).",
  values: SPAM_ROUTINGS,
});
export const TicketPlacementEnum = builder.enumType("TicketPlacement", {
  description:
    "Where the ticket number goes in outbound subjects: END (default), START, or HIDDEN (not shown).",
  values: TICKET_PLACEMENTS,
});
export const TicketDelimiterEnum = builder.enumType("TicketDelimiter", {
  description: "How the ticket number is wrapped: NONE (#123456), SQUARE ([#123456]) or CURLY ({#123456}).",
  values: TICKET_DELIMITERS,
});
export const ThreadingModeEnum = builder.enumType("ThreadingMode", {
  description:
    "How replies find their conversation: REFERENCES_THEN_TICKET (In-Reply-To/References, then ticket number) or TICKET_ONLY.",
  values: THREADING_MODES,
});
export const SignaturePolicyEnum = builder.enumType("SignaturePolicy", {
  description: "When the signature is added to outbound mail: ALL messages, the FIRST_REPLY only, or NONE.",
  values: SIGNATURE_POLICIES,
});
export const HistoryPolicyEnum = builder.enumType("HistoryPolicy", {
  description: "Whether replies quote the previous messages: ALWAYS, NEVER, or AGENT_DECIDES per reply.",
  values: HISTORY_POLICIES,
});

const idOrNull = (type: string, id: string | null) => (id ? encodeId(type, id) : null);

builder.node(EmailAddressRef, {
  description:
    "A point of contact: an address customers write to, with its sender identity, the account it belongs to, " +
    "where its mail is routed, and how outbound mail from it looks. Readable by every user of the tenant; changed by ADMIN.",
  id: { resolve: (a) => a.id, description: "Global ID." },
  loadOne: loadVisible(EmailAddressRef, getEmailAddress),
  fields: (t) => ({
    address: t.exposeString("address", {
      description: "The address customers write to; unique across all tenants.",
    }),
    name: t.exposeString("name", { description: "Internal channel name shown to agents." }),
    displayName: t.exposeString("displayName", {
      description: "Display name in the From header of outbound mail; may be empty.",
    }),
    fromAddress: t.exposeString("fromAddress", {
      nullable: true,
      description: "From address of outbound mail; null = `address`.",
    }),
    replyTo: t.exposeString("replyTo", {
      nullable: true,
      description: "Reply-To of outbound mail; null = none.",
    }),
    bcc: t.stringList({
      nullable: true,
      description:
        "Hidden BCC recipients of every outbound mail (at most 5). Null unless the caller is ADMIN or has SEE_BCC.",
      resolve: (a, _args, ctx) =>
        ctx.viewer && (ctx.viewer.role === "ADMIN" || ctx.viewer.permissions.has("SEE_BCC")) ? a.bcc : null,
    }),
    account: t.loadable({
      type: MailAccountRef,
      nullable: true,
      description:
        "The mail account it receives and sends through. Null when none is set or the caller is not ADMIN.",
      load: (ids: string[], ctx) => loadMailAccounts(ctx.engine, ctx.viewer!, ids),
      resolve: (a) => a.accountId,
    }),
    queue: t.loadable({
      type: QueueRef,
      nullable: true,
      description:
        "Routing target: the queue new conversations go to. Null when unset or outside the caller's queues.",
      load: (ids: string[], ctx) => loadQueues(ctx.engine, ctx.viewer!, ids),
      resolve: (a) => a.queueId,
    }),
    requiredSkillIds: t.idList({
      description: "Global IDs (type Skill) of skills agents need for conversations from this address.",
      resolve: (a) => a.requiredSkillIds.map((id) => encodeId("Skill", id)),
    }),
    language: t.exposeString("language", {
      nullable: true,
      description: "Language tag set on new conversations, e.g. en or de-CH.",
    }),
    priority: t.exposeInt("priority", {
      nullable: true,
      description: "Priority (0–1,000) of new conversations; null = the queue's default.",
    }),
    spamRouting: t.field({
      type: SpamRoutingEnum,
      description: "What happens to spam.",
      resolve: (a) => a.spamRouting,
    }),
    spamQueue: t.loadable({
      type: QueueRef,
      nullable: true,
      description:
        "Queue for spam when spamRouting is QUEUE. Null when unset or outside the caller's queues.",
      load: (ids: string[], ctx) => loadQueues(ctx.engine, ctx.viewer!, ids),
      resolve: (a) => a.spamQueueId,
    }),
    outboundAllowed: t.exposeBoolean("outboundAllowed", {
      description: "Whether agents may start new outbound conversations from it.",
    }),
    forceTls: t.exposeBoolean("forceTls", {
      description:
        "Send only over TLS; if the recipient's server cannot, the message is not sent and the recipient is marked invalid.",
    }),
    ticketPlacement: t.field({
      type: TicketPlacementEnum,
      description: "Ticket number position in subjects.",
      resolve: (a) => a.ticketPlacement,
    }),
    ticketDelimiter: t.field({
      type: TicketDelimiterEnum,
      description: "Ticket number delimiters.",
      resolve: (a) => a.ticketDelimiter,
    }),
    threadingMode: t.field({
      type: ThreadingModeEnum,
      description: "How replies are threaded.",
      resolve: (a) => a.threadingMode,
    }),
    signaturePolicy: t.field({
      type: SignaturePolicyEnum,
      description: "When signatures are added.",
      resolve: (a) => a.signaturePolicy,
    }),
    historyPolicy: t.field({
      type: HistoryPolicyEnum,
      description: "Whether replies quote history.",
      resolve: (a) => a.historyPolicy,
    }),
    brandedTemplateId: t.id({
      nullable: true,
      description:
        "Global ID (type BrandedTemplate) of the HTML template wrapping outbound bodies; null = none.",
      resolve: (a) => idOrNull("BrandedTemplate", a.brandedTemplateId),
    }),
    slaPolicyId: t.id({
      nullable: true,
      description:
        "Global ID (type SlaPolicy) overriding the tenant's default SLA policy; null = no override.",
      resolve: (a) => idOrNull("SlaPolicy", a.slaPolicyId),
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

const EmailAddressInput = builder.inputType("EmailAddressInput", {
  description:
    "Fields of an email address. On update, omitted fields stay unchanged; null clears an optional field. " +
    "Text that ends up in mail headers must not contain line breaks or control characters.",
  fields: (t) => ({
    address: t.string({
      description: "Required on create. A valid address, unique across all tenants (case-insensitive).",
    }),
    name: t.string({ description: "Required on create. Internal channel name, 1–100 characters." }),
    displayName: t.string({ description: "From display name, up to 200 characters." }),
    fromAddress: t.string({ description: "From address of outbound mail; null = `address`." }),
    replyTo: t.string({ description: "Reply-To address; null = none." }),
    bcc: t.stringList({
      description: "Hidden BCC recipients, at most 5 valid addresses; replaces the list.",
    }),
    accountId: t.id({ description: "Global ID of a MailAccount of the tenant; null = none." }),
    queueId: t.id({ description: "Global ID of the routing target Queue; null = unrouted." }),
    requiredSkillIds: t.idList({
      description: "Global IDs of Skills required for its conversations; replaces the list.",
    }),
    language: t.string({ description: "Language tag, e.g. en or de-CH; null = unknown." }),
    priority: t.int({ description: "0–1,000; null = the queue's default priority." }),
    spamRouting: t.field({ type: SpamRoutingEnum, description: "Default TAG. QUEUE requires spamQueueId." }),
    spamQueueId: t.id({ description: "Global ID of the Queue spam goes to." }),
    outboundAllowed: t.boolean({ description: "Default true." }),
    forceTls: t.boolean({ description: "Default false." }),
    ticketPlacement: t.field({ type: TicketPlacementEnum, description: "Default END." }),
    ticketDelimiter: t.field({ type: TicketDelimiterEnum, description: "Default SQUARE." }),
    threadingMode: t.field({ type: ThreadingModeEnum, description: "Default REFERENCES_THEN_TICKET." }),
    signaturePolicy: t.field({ type: SignaturePolicyEnum, description: "Default ALL." }),
    historyPolicy: t.field({ type: HistoryPolicyEnum, description: "Default ALWAYS." }),
    brandedTemplateId: t.id({ description: "Global ID of a BrandedTemplate; null = none." }),
    slaPolicyId: t.id({ description: "Global ID of an SlaPolicy; null = the tenant default." }),
  }),
});

const nn = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

function addressInput(i: typeof EmailAddressInput.$inferInput): EngineInput {
  return {
    address: nn(i.address),
    name: nn(i.name),
    displayName: i.displayName === null ? "" : i.displayName,
    fromAddress: i.fromAddress,
    replyTo: i.replyTo,
    bcc: i.bcc === null ? [] : i.bcc,
    accountId: decodeRefId(i.accountId as string | null | undefined, "MailAccount"),
    queueId: decodeRefId(i.queueId as string | null | undefined, "Queue"),
    requiredSkillIds:
      i.requiredSkillIds === null ? [] : i.requiredSkillIds?.map((id) => decodeRefId(String(id), "Skill")!),
    language: i.language,
    priority: i.priority,
    spamRouting: nn(i.spamRouting),
    spamQueueId: decodeRefId(i.spamQueueId as string | null | undefined, "Queue"),
    outboundAllowed: nn(i.outboundAllowed),
    forceTls: nn(i.forceTls),
    ticketPlacement: nn(i.ticketPlacement),
    ticketDelimiter: nn(i.ticketDelimiter),
    threadingMode: nn(i.threadingMode),
    signaturePolicy: nn(i.signaturePolicy),
    historyPolicy: nn(i.historyPolicy),
    brandedTemplateId: decodeRefId(i.brandedTemplateId as string | null | undefined, "BrandedTemplate"),
    slaPolicyId: decodeRefId(i.slaPolicyId as string | null | undefined, "SlaPolicy"),
  };
}

builder.queryFields((t) => ({
  emailAddresses: t.withAuth({ authenticated: true }).connection({
    type: EmailAddressRef,
    description: "Email addresses of the caller's tenant, ordered by address. Any user.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the address or name." }),
      includeArchived: t.arg.boolean({ description: "Include archived addresses (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listEmailAddresses(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createEmailAddress: t.withAuth({ admin: true }).field({
    type: EmailAddressRef,
    description:
      "Creates an email address. ADMIN only. Referenced objects must exist in the tenant (field errors otherwise).",
    errors: { types: standardErrors },
    args: {
      input: t.arg({
        type: EmailAddressInput,
        required: true,
        description: "The new address; address and name are required.",
      }),
    },
    resolve: (_root, { input }, ctx) => createEmailAddress(ctx.engine, ctx.viewer, addressInput(input)),
  }),
  updateEmailAddress: t.withAuth({ admin: true }).field({
    type: EmailAddressRef,
    description:
      "Changes an email address. ADMIN only. Moving a queue's default address to an outbound-only account is refused (accountId).",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The address's global ID." }),
      input: t.arg({ type: EmailAddressInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateEmailAddress(ctx.engine, ctx.viewer, decodeId(String(id), "EmailAddress"), addressInput(input)),
  }),
  archiveEmailAddress: t.withAuth({ admin: true }).field({
    type: EmailAddressRef,
    description:
      "Archives an email address. ADMIN only. ConflictError while it is an active queue's default address.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The address's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveEmailAddress(ctx.engine, ctx.viewer, decodeId(String(id), "EmailAddress")),
  }),
}));

import {
  getTenantSettings,
  type TenantSettings,
  updateTenantSettings,
} from "../engine/config/tenant-settings.js";
import { ROLES } from "../engine/domain.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { PermissionEnum, RoleEnum } from "./viewer.js";

const RolePermissionsRef = builder
  .objectRef<{ role: (typeof ROLES)[number]; permissions: string[] }>("RolePermissions")
  .implement({
    description: "What one role may do.",
    fields: (t) => ({
      role: t.field({ type: RoleEnum, description: "The role.", resolve: (r) => r.role }),
      permissions: t.field({
        type: [PermissionEnum],
        description: "Its permissions, in a fixed order. ADMIN always has every permission.",
        resolve: (r) => r.permissions as never,
      }),
    }),
  });

const TenantSettingsRef = builder.objectRef<TenantSettings>("TenantSettings").implement({
  description: "Tenant-wide settings (SPEC §1, §3, §4, §6, §9, §11). Readable by SUPERVISOR and ADMIN.",
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name of the organisation." }),
    company: t.exposeString("company", {
      description: "Company name for signatures and the @{company} tag.",
    }),
    timeZone: t.exposeString("timeZone", { description: "IANA time zone, e.g. Europe/Berlin." }),
    emailEnabled: t.exposeBoolean("emailEnabled", {
      description: "The email channel on/off: off stops ingest and sending for the tenant.",
    }),
    processingLimit: t.exposeInt("processingLimit", {
      nullable: true,
      description: "Above this many open conversations ingest pauses; null = no limit.",
    }),
    appendTicketOnFirstReply: t.exposeBoolean("appendTicketOnFirstReply", {
      description:
        "Append the ticket number to the subject on the first reply. Excludes agentsMayEditSubject.",
    }),
    agentsMayEditSubject: t.exposeBoolean("agentsMayEditSubject", {
      description: "Agents may edit the subject of replies. Excludes appendTicketOnFirstReply.",
    }),
    activeToPausedDays: t.exposeInt("activeToPausedDays", {
      nullable: true,
      description: "ACTIVE → PAUSED after this many days without activity; null = timer off.",
    }),
    pausedToClosedDays: t.exposeInt("pausedToClosedDays", {
      nullable: true,
      description: "PAUSED → CLOSED after this many days; null = timer off.",
    }),
    resolvedToClosedDays: t.exposeInt("resolvedToClosedDays", {
      nullable: true,
      description: "RESOLVED → CLOSED after this many days; null = timer off.",
    }),
    reopenEnabled: t.exposeBoolean("reopenEnabled", {
      description:
        "New mail on a CLOSED conversation within the window reopens it; off = always a new conversation.",
    }),
    reopenWindowDays: t.exposeInt("reopenWindowDays", {
      description: "Days after closing during which new mail reopens the conversation.",
    }),
    retentionDays: t.exposeInt("retentionDays", {
      nullable: true,
      description:
        "Closed conversations and their raw mail are purged after this many days; null = keep forever.",
    }),
    autoReplyLimitPerSender: t.exposeInt("autoReplyLimitPerSender", {
      description: "Loop protection: at most this many auto-replies to one sender per window.",
    }),
    autoReplyLimitWindowMinutes: t.exposeInt("autoReplyLimitWindowMinutes", {
      description: "The window of autoReplyLimitPerSender, in minutes.",
    }),
    messageIdDomain: t.exposeString("messageIdDomain", {
      nullable: true,
      description: "Right-hand side of our own Message-IDs; null = a tenant-specific placeholder domain.",
    }),
    rolePermissions: t.field({
      type: [RolePermissionsRef],
      description: "Permissions of every role, in the order ADMIN, SUPERVISOR, AGENT.",
      resolve: (s) => ROLES.map((role) => ({ role, permissions: s.rolePermissions[role] ?? [] })),
    }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const RolePermissionsInput = builder.inputType("RolePermissionsInput", {
  description: "The complete permission list of one role.",
  fields: (t) => ({
    role: t.field({ type: RoleEnum, required: true, description: "The role." }),
    permissions: t.field({
      type: [PermissionEnum],
      required: true,
      description: "Every permission the role has afterwards. ADMIN must keep all of them.",
    }),
  }),
});

const TenantSettingsInput = builder.inputType("TenantSettingsInput", {
  description:
    "Changes to tenant settings: omitted fields stay unchanged; for nullable settings null switches the feature off.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters." }),
    company: t.string({ description: "Up to 200 characters." }),
    timeZone: t.string({ description: "An IANA time zone such as Europe/Berlin (no raw offsets)." }),
    emailEnabled: t.boolean({ description: "The email channel on/off." }),
    processingLimit: t.int({ description: "1–1,000,000 open conversations; null = no limit." }),
    appendTicketOnFirstReply: t.boolean({
      description: "Cannot be true together with agentsMayEditSubject.",
    }),
    agentsMayEditSubject: t.boolean({
      description: "Cannot be true together with appendTicketOnFirstReply.",
    }),
    activeToPausedDays: t.int({ description: "1–1,000 days; null = timer off." }),
    pausedToClosedDays: t.int({ description: "1–1,000 days; null = timer off." }),
    resolvedToClosedDays: t.int({ description: "1–1,000 days; null = timer off." }),
    reopenEnabled: t.boolean({ description: "Reopen CLOSED conversations on new mail within the window." }),
    reopenWindowDays: t.int({ description: "1–1,000 days." }),
    retentionDays: t.int({ description: "1–3,650 days; null = keep forever." }),
    autoReplyLimitPerSender: t.int({ description: "1–1,000 auto-replies per sender per window." }),
    autoReplyLimitWindowMinutes: t.int({ description: "1–10,080 minutes (one week)." }),
    messageIdDomain: t.string({ description: "A host name such as mail.example.com; null = default." }),
    rolePermissions: t.field({
      type: [RolePermissionsInput],
      description:
        "Roles whose permissions change; roles not listed keep theirs. Applies from the next request.",
    }),
  }),
});

builder.queryField("tenantSettings", (t) =>
  t.withAuth({ supervisor: true }).field({
    type: TenantSettingsRef,
    description: "The caller's tenant settings. SUPERVISOR or ADMIN.",
    resolve: (_root, _args, ctx) => getTenantSettings(ctx.engine, ctx.viewer),
  }),
);

builder.mutationField("updateTenantSettings", (t) =>
  t.withAuth({ admin: true }).field({
    type: TenantSettingsRef,
    description: "Changes tenant settings; every invalid field is reported at once. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({ type: TenantSettingsInput, required: true, description: "Settings to change." }),
    },
    // Only keys the client sent are passed on: an explicit null must stay distinguishable
    // from an omitted field (null switches a feature off, omitted leaves it alone).
    resolve: (_root, { input }, ctx) => updateTenantSettings(ctx.engine, ctx.viewer, input),
  }),
);

import { sql } from "drizzle-orm";
import {
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import type {
  AccountKind,
  AccountStatus,
  HistoryPolicy,
  Holiday,
  ImapAfterProcess,
  OpeningInterval,
  PreferredAgentMode,
  Presence,
  QueueOrder,
  RoutingStrategy,
  SignaturePolicy,
  SmtpTlsMode,
  SpamRouting,
  ThreadingMode,
  TicketDelimiter,
  TicketPlacement,
} from "../../engine/domain.js";
import { emptyUuidArray, id, timestamps, tstz } from "./common.js";
import { accessProfile, team, tenant, user } from "./tenancy.js";

export const businessCalendar = pgTable("business_calendar", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  timeZone: text("time_zone").notNull(),
  intervals: jsonb("intervals").$type<OpeningInterval[]>().notNull().default([]),
  holidays: jsonb("holidays").$type<Holiday[]>().notNull().default([]),
  archivedAt: tstz("archived_at"),
  ...timestamps(),
});

export const slaPolicy = pgTable("sla_policy", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  /** Targets in business minutes; null = no target of that kind. */
  firstResponseMinutes: integer("first_response_minutes"),
  nextResponseMinutes: integer("next_response_minutes"),
  resolutionMinutes: integer("resolution_minutes"),
  /** Percentage of the target after which a warning event fires. */
  warningPercent: integer("warning_percent").notNull().default(80),
  /** Calendar used when the queue has none; null = counted around the clock. */
  calendarId: uuid("calendar_id").references(() => businessCalendar.id, { onDelete: "set null" }),
  archivedAt: tstz("archived_at"),
  ...timestamps(),
});

export const signature = pgTable(
  "signature",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    text: text("text").notNull().default(""),
    html: text("html"),
    /** Set when this is a user's personal signature; a user holds at most one. */
    userId: uuid("user_id").references(() => user.id, { onDelete: "set null" }),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [uniqueIndex("signature_user_uq").on(t.userId).where(sql`user_id IS NOT NULL`)],
);

export const brandedTemplate = pgTable("branded_template", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  /** Full HTML document with a `{{content}}` placeholder where the body goes. */
  html: text("html").notNull(),
  archivedAt: tstz("archived_at"),
  ...timestamps(),
});

export const cannedResponse = pgTable("canned_response", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  subject: text("subject"),
  text: text("text").notNull().default(""),
  html: text("html"),
  archivedAt: tstz("archived_at"),
  ...timestamps(),
});

export const autoReplyTemplate = pgTable("auto_reply_template", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  /** null = `Re: ` + the original subject (SPEC §9). */
  subject: text("subject"),
  text: text("text").notNull().default(""),
  html: text("html"),
  archivedAt: tstz("archived_at"),
  ...timestamps(),
});

export const mailAccount = pgTable("mail_account", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  kind: text("kind").$type<AccountKind>().notNull().default("INBOUND_OUTBOUND"),
  imapHost: text("imap_host"),
  imapPort: integer("imap_port"),
  imapTls: boolean("imap_tls").notNull().default(true),
  imapUser: text("imap_user"),
  /** AES-256-GCM ciphertext (see engine/crypto); never returned by the API. */
  imapPasswordEnc: text("imap_password_enc"),
  imapMailbox: text("imap_mailbox").notNull().default("INBOX"),
  imapAfterProcess: text("imap_after_process").$type<ImapAfterProcess>().notNull().default("SEEN"),
  imapMoveTo: text("imap_move_to"),
  smtpHost: text("smtp_host"),
  smtpPort: integer("smtp_port"),
  smtpTlsMode: text("smtp_tls_mode").$type<SmtpTlsMode>().notNull().default("STARTTLS"),
  smtpUser: text("smtp_user"),
  smtpPasswordEnc: text("smtp_password_enc"),
  status: text("status").$type<AccountStatus>().notNull().default("UNKNOWN"),
  lastError: text("last_error"),
  lastCheckedAt: tstz("last_checked_at"),
  enabled: boolean("enabled").notNull().default(true),
  archivedAt: tstz("archived_at"),
  ...timestamps(),
});

export const queue = pgTable(
  "queue",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    calendarId: uuid("calendar_id").references(() => businessCalendar.id, { onDelete: "set null" }),
    /** The address replies go out from by default; never one on an outbound-only account. */
    defaultAddressId: uuid("default_address_id"),
    strategy: text("strategy").$type<RoutingStrategy>().notNull().default("LEAST_ACTIVE"),
    preferredAgentMode: text("preferred_agent_mode")
      .$type<PreferredAgentMode>()
      .notNull()
      .default("WAIT_WHILE_OFFLINE"),
    preferredAgentTimeoutSeconds: integer("preferred_agent_timeout_seconds").notNull().default(3600),
    order: text("queue_order").$type<QueueOrder>().notNull().default("PRIORITY_SCORE"),
    defaultPriority: integer("default_priority").notNull().default(0),
    autoAssign: boolean("auto_assign").notNull().default(true),
    dailyAutoAssignLimit: integer("daily_auto_assign_limit"),
    autoAssignOnlyInBusinessHours: boolean("auto_assign_only_in_business_hours").notNull().default(false),
    autoAssignOnlyLoggedIn: boolean("auto_assign_only_logged_in").notNull().default(true),
    routablePresences: text("routable_presences")
      .array()
      .$type<Presence[]>()
      .notNull()
      .default(sql`'{AVAILABLE}'::text[]`),
    offerRequired: boolean("offer_required").notNull().default(false),
    offerTimeoutSeconds: integer("offer_timeout_seconds").notNull().default(120),
    manualParkingAllowed: boolean("manual_parking_allowed").notNull().default(true),
    autoParking: boolean("auto_parking").notNull().default(false),
    autoParkSpacingSeconds: integer("auto_park_spacing_seconds").notNull().default(30),
    presentNextWhenAllParked: boolean("present_next_when_all_parked").notNull().default(false),
    /** Unassign when the customer has not answered within this many minutes; null = off. */
    customerResponseCountdownMinutes: integer("customer_response_countdown_minutes"),
    slaPolicyId: uuid("sla_policy_id").references(() => slaPolicy.id, { onDelete: "set null" }),
    signatureId: uuid("signature_id").references(() => signature.id, { onDelete: "set null" }),
    autoReplyTemplateId: uuid("auto_reply_template_id").references(() => autoReplyTemplate.id, {
      onDelete: "set null",
    }),
    autoReplyOnNew: boolean("auto_reply_on_new").notNull().default(false),
    autoReplyOnClosed: boolean("auto_reply_on_closed").notNull().default(false),
    autoReplyOnPaused: boolean("auto_reply_on_paused").notNull().default(false),
    autoReplyOnIdle: boolean("auto_reply_on_idle").notNull().default(false),
    autoReplyIdleDays: integer("auto_reply_idle_days").notNull().default(15),
    /** Sender for auto-replies; may be an outbound-only account's address. */
    autoReplyAddressId: uuid("auto_reply_address_id"),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [
    uniqueIndex("queue_tenant_name_uq").on(t.tenantId, sql`lower(${t.name})`).where(sql`archived_at IS NULL`),
  ],
);

export const emailAddress = pgTable(
  "email_address",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    /** The inbound address customers write to; unique across all tenants so SMTP delivery is unambiguous. */
    address: text("address").notNull(),
    /** Internal channel name shown to agents. */
    name: text("name").notNull(),
    displayName: text("display_name").notNull().default(""),
    /** From address of outbound mail; defaults to `address`. */
    fromAddress: text("from_address"),
    replyTo: text("reply_to"),
    bcc: text("bcc").array().notNull().default(sql`'{}'::text[]`),
    accountId: uuid("account_id").references(() => mailAccount.id, { onDelete: "set null" }),
    queueId: uuid("queue_id").references(() => queue.id, { onDelete: "set null" }),
    requiredSkillIds: uuid("required_skill_ids").array().notNull().default(emptyUuidArray),
    language: text("language"),
    priority: integer("priority"),
    spamRouting: text("spam_routing").$type<SpamRouting>().notNull().default("TAG"),
    spamQueueId: uuid("spam_queue_id").references(() => queue.id, { onDelete: "set null" }),
    outboundAllowed: boolean("outbound_allowed").notNull().default(true),
    forceTls: boolean("force_tls").notNull().default(false),
    ticketPlacement: text("ticket_placement").$type<TicketPlacement>().notNull().default("END"),
    ticketDelimiter: text("ticket_delimiter").$type<TicketDelimiter>().notNull().default("SQUARE"),
    threadingMode: text("threading_mode").$type<ThreadingMode>().notNull().default("REFERENCES_THEN_TICKET"),
    signaturePolicy: text("signature_policy").$type<SignaturePolicy>().notNull().default("ALL"),
    historyPolicy: text("history_policy").$type<HistoryPolicy>().notNull().default("ALWAYS"),
    brandedTemplateId: uuid("branded_template_id").references(() => brandedTemplate.id, {
      onDelete: "set null",
    }),
    slaPolicyId: uuid("sla_policy_id").references(() => slaPolicy.id, { onDelete: "set null" }),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [
    // Unique among live addresses, across tenants (SMTP finds the tenant by the address).
    // An archived address frees it: until 2026-11-23 it could never be used again, by
    // any tenant (config probe, session 17).
    uniqueIndex("email_address_address_uq").on(sql`lower(${t.address})`).where(sql`archived_at IS NULL`),
    index("email_address_tenant_idx").on(t.tenantId),
    check("email_address_bcc_max5", sql`cardinality(${t.bcc}) <= 5`),
  ],
);

export const queueAddress = pgTable(
  "queue_address",
  {
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    queueId: uuid("queue_id")
      .notNull()
      .references(() => queue.id, { onDelete: "cascade" }),
    addressId: uuid("address_id")
      .notNull()
      .references(() => emailAddress.id, { onDelete: "cascade" }),
    ...timestamps(),
  },
  (t) => [primaryKey({ name: "queue_address_pk", columns: [t.queueId, t.addressId] })],
);

export const queueMember = pgTable(
  "queue_member",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    queueId: uuid("queue_id")
      .notNull()
      .references(() => queue.id, { onDelete: "cascade" }),
    /** Exactly one of userId / teamId: an agent directly, or a whole team. */
    userId: uuid("user_id").references(() => user.id, { onDelete: "cascade" }),
    teamId: uuid("team_id").references(() => team.id, { onDelete: "cascade" }),
    ...timestamps(),
  },
  (t) => [
    check("queue_member_one_of", sql`(${t.userId} IS NULL) <> (${t.teamId} IS NULL)`),
    uniqueIndex("queue_member_user_uq").on(t.queueId, t.userId).where(sql`user_id IS NOT NULL`),
    uniqueIndex("queue_member_team_uq").on(t.queueId, t.teamId).where(sql`team_id IS NOT NULL`),
    index("queue_member_user_idx").on(t.userId),
    index("queue_member_team_idx").on(t.teamId),
  ],
);

export const accessProfileQueue = pgTable(
  "access_profile_queue",
  {
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    accessProfileId: uuid("access_profile_id")
      .notNull()
      .references(() => accessProfile.id, { onDelete: "cascade" }),
    queueId: uuid("queue_id")
      .notNull()
      .references(() => queue.id, { onDelete: "cascade" }),
    ...timestamps(),
  },
  (t) => [primaryKey({ name: "access_profile_queue_pk", columns: [t.accessProfileId, t.queueId] })],
);

/**
 * The shared vocabulary of Switchboard: every closed set of values the domain uses.
 * `as const` unions instead of enums (house style); the database stores the strings.
 */

export const ROLES = ["ADMIN", "SUPERVISOR", "AGENT"] as const;
export type Role = (typeof ROLES)[number];

/** Per-role permissions (SPEC §1), checked on the server for every action. */
export const PERMISSIONS = [
  "REPLY_INBOUND",
  "START_OUTBOUND",
  "FORWARD",
  "EDIT_SUBJECT",
  "CHANGE_FROM",
  "SEE_BCC",
  "TRANSFER",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const PRESENCES = ["AVAILABLE", "BUSY", "AWAY", "OFFLINE"] as const;
export type Presence = (typeof PRESENCES)[number];

export const CONVERSATION_STATUSES = ["NEW", "ACTIVE", "PAUSED", "RESOLVED", "CLOSED", "REOPENED"] as const;
export type ConversationStatus = (typeof CONVERSATION_STATUSES)[number];

/**
 * Where a conversation stands in routing, independent of its lifecycle status:
 * WAITING in the queue, OFFERED to one agent, or owned by an agent as its one ACTIVE
 * conversation or a PARKED one; DONE once resolved/closed (nothing to route).
 */
export const WORK_STATES = ["WAITING", "OFFERED", "ACTIVE", "PARKED", "DONE"] as const;
export type WorkState = (typeof WORK_STATES)[number];

export const ROUTING_STRATEGIES = [
  "LEAST_ACTIVE",
  "PROFICIENCY",
  "PREFERRED_AGENT",
  "LEAST_BUSY",
  "MOST_BUSY",
] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

export const PREFERRED_AGENT_MODES = ["WAIT_WHILE_OFFLINE", "WAIT_WHILE_BUSY"] as const;
export type PreferredAgentMode = (typeof PREFERRED_AGENT_MODES)[number];

export const QUEUE_ORDERS = ["PRIORITY_SCORE", "SLA_REMAINING"] as const;
export type QueueOrder = (typeof QUEUE_ORDERS)[number];

export const MESSAGE_DIRECTIONS = ["INBOUND", "OUTBOUND", "NOTE"] as const;
export type MessageDirection = (typeof MESSAGE_DIRECTIONS)[number];

export const OUTBOUND_STATUSES = ["QUEUED", "SENDING", "SENT", "FAILED", "BOUNCED"] as const;
export type OutboundStatus = (typeof OUTBOUND_STATUSES)[number];

export const ACCOUNT_KINDS = ["INBOUND_OUTBOUND", "OUTBOUND_ONLY"] as const;
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

export const ACCOUNT_STATUSES = ["UNKNOWN", "VALID", "INVALID"] as const;
export type AccountStatus = (typeof ACCOUNT_STATUSES)[number];

export const SMTP_TLS_MODES = ["NONE", "STARTTLS", "TLS"] as const;
export type SmtpTlsMode = (typeof SMTP_TLS_MODES)[number];

/** What happens to a mail on the IMAP server after it was committed here. */
export const IMAP_AFTER_PROCESS = ["SEEN", "MOVE", "LEAVE"] as const;
export type ImapAfterProcess = (typeof IMAP_AFTER_PROCESS)[number];

export const SPAM_ROUTINGS = ["QUEUE", "TAG", "DROP"] as const;
export type SpamRouting = (typeof SPAM_ROUTINGS)[number];

export const TICKET_PLACEMENTS = ["END", "START", "HIDDEN"] as const;
export type TicketPlacement = (typeof TICKET_PLACEMENTS)[number];

export const TICKET_DELIMITERS = ["NONE", "SQUARE", "CURLY"] as const;
export type TicketDelimiter = (typeof TICKET_DELIMITERS)[number];

export const THREADING_MODES = ["REFERENCES_THEN_TICKET", "TICKET_ONLY"] as const;
export type ThreadingMode = (typeof THREADING_MODES)[number];

export const SIGNATURE_POLICIES = ["ALL", "FIRST_REPLY", "NONE"] as const;
export type SignaturePolicy = (typeof SIGNATURE_POLICIES)[number];

export const HISTORY_POLICIES = ["ALWAYS", "NEVER", "AGENT_DECIDES"] as const;
export type HistoryPolicy = (typeof HISTORY_POLICIES)[number];

export const ACTOR_TYPES = ["SYSTEM", "USER", "CONTACT"] as const;
export type ActorType = (typeof ACTOR_TYPES)[number];

/** Signature tags (SPEC §2), written `{{agent.name}}`; filled in when a reply is sent. */
export const SIGNATURE_TAGS = ["agent.name", "agent.alias", "agent.email", "company"] as const;
export type SignatureTag = (typeof SIGNATURE_TAGS)[number];

/** Auto-reply tags (SPEC §9), written `@{consumer}`; any other `@{…}` is rejected on save. */
export const AUTO_REPLY_TAGS = [
  "consumer",
  "agent",
  "date",
  "time",
  "queue",
  "company",
  "next_working_date",
  "ticket_id",
] as const;
export type AutoReplyTag = (typeof AUTO_REPLY_TAGS)[number];

/** Weekday numbers as ISO 8601: 1 = Monday … 7 = Sunday. */
export type IsoWeekday = 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** One weekly opening interval; `end` <= `start` means it spans midnight into the next day. */
export interface OpeningInterval {
  weekday: IsoWeekday;
  /** "HH:MM", 24-hour, local to the calendar's time zone. */
  start: string;
  /** "HH:MM"; "24:00" allowed for end of day. */
  end: string;
}

export interface Holiday {
  /** "YYYY-MM-DD" in the calendar's time zone; closed all day. */
  date: string;
  name: string;
}

export interface BusinessCalendar {
  timeZone: string;
  intervals: OpeningInterval[];
  holidays: Holiday[];
}

import type { BusinessCalendar } from "../domain.js";

/**
 * Routing rules (SPEC §7): ordered conditions → actions, evaluated on every inbound
 * message after threading. These are the shapes the API stores and the engine runs.
 */

export const TEXT_FIELDS = ["from", "to", "cc", "subject", "body", "header"] as const;
export type TextField = (typeof TEXT_FIELDS)[number];

export const TEXT_OPS = ["CONTAINS", "EQUALS", "REGEX", "NOT_CONTAINS"] as const;
export type TextOp = (typeof TEXT_OPS)[number];

export const RULE_MATCH_MODES = ["ALL", "ANY"] as const;
export type RuleMatchMode = (typeof RULE_MATCH_MODES)[number];

/**
 * A text test. For list fields (to, cc, a repeated header) it holds when any entry
 * matches; NOT_CONTAINS holds when no entry contains the value (so also for an empty
 * list or a missing header). Case-insensitive unless `caseSensitive`.
 */
export interface TextCondition {
  field: TextField;
  /** Header name for `field: "header"`, any case. */
  header?: string;
  op: TextOp;
  value: string;
  caseSensitive?: boolean;
}

export interface SpamCondition {
  field: "spam";
  value: boolean;
}

/** Language tag equality, case-insensitive; "de" also matches "de-AT". */
export interface LanguageCondition {
  field: "language";
  op: "EQUALS";
  value: string;
}

/** A text test on one attribute of the sender's contact record; a missing attribute has no value. */
export interface ContactAttributeCondition {
  field: "contactAttribute";
  key: string;
  op: TextOp;
  value: string;
  caseSensitive?: boolean;
}

/**
 * Whether the mail was *received* (not processed: SPEC §3, a backlog must not change
 * routing) inside or outside a business-hours calendar, which the caller resolves.
 */
export interface ReceivedTimeCondition {
  field: "receivedTime";
  calendar: BusinessCalendar;
  inside: boolean;
}

export type Condition =
  | TextCondition
  | SpamCondition
  | LanguageCondition
  | ContactAttributeCondition
  | ReceivedTimeCondition;

export const ACTION_TYPES = [
  "SET_QUEUE",
  "SET_SKILLS",
  "ADD_SKILLS",
  "SET_PRIORITY",
  "SET_LANGUAGE",
  "ADD_TAGS",
  "SEND_AUTO_REPLY",
  "DROP",
  "STOP",
] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

export type Action =
  | { type: "SET_QUEUE"; queueId: string }
  | { type: "SET_SKILLS"; skillIds: string[] }
  | { type: "ADD_SKILLS"; skillIds: string[] }
  | { type: "SET_PRIORITY"; priority: number }
  | { type: "SET_LANGUAGE"; language: string }
  | { type: "ADD_TAGS"; tags: string[] }
  | { type: "SEND_AUTO_REPLY"; templateId: string }
  | { type: "DROP" }
  | { type: "STOP" };

export interface Rule {
  id: string;
  name: string;
  /** Evaluation order, ascending; ties keep the order given. */
  position: number;
  enabled: boolean;
  /** No conditions: the rule always matches (a catch-all at the end). */
  conditions: Condition[];
  match: RuleMatchMode;
  actions: Action[];
}

/** What rules see of an inbound message. Header names are lower-case. */
export interface RuleInput {
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  bodyText: string;
  headers: Record<string, string[]>;
  spam: boolean;
  language: string | null;
  contactAttributes: Record<string, string>;
  receivedAt: Date;
}

/**
 * The combined effect of every matched rule. Setters: the last matched rule wins;
 * ADD_* accumulate without duplicates in first-seen order.
 */
export interface RuleOutcome {
  queueId?: string;
  skillIds: string[];
  priority?: number;
  language?: string;
  tags: string[];
  autoReplyTemplateId?: string;
  dropped: boolean;
}

export interface RuleMatch {
  ruleId: string;
  name: string;
  /** The rule's compiled actions, frozen: shared by every evaluation. */
  actions: readonly Action[];
}

/** One line per rule, in evaluation order: what the timeline and a dry run show. */
export interface RuleTraceEntry {
  ruleId: string;
  matched: boolean;
  reason: string;
}

export interface RuleEvaluation {
  matched: RuleMatch[];
  outcome: RuleOutcome;
  trace: RuleTraceEntry[];
}

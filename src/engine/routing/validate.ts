import {
  PREFERRED_AGENT_MODES,
  PRESENCES,
  type PreferredAgentMode,
  type Presence,
  QUEUE_ORDERS,
  type QueueOrder,
  ROUTING_STRATEGIES,
  type RoutingStrategy,
} from "../domain.js";
import { type InboxLimit, PRESENT_NEXT_POLICIES, type PresentNextPolicy } from "./types.js";

/**
 * Validation of routing settings as they arrive from the configuration API. Every problem
 * is reported at once (a form shows them all), as `{field, message}`. Fields absent from
 * the input are not checked, so a partial update validates only what it changes. Values
 * are checked at runtime, not trusted from their static type: they come from JSON.
 */

export interface RoutingSettingsInput {
  strategy: RoutingStrategy;
  order: QueueOrder;
  routablePresences: readonly Presence[];
  preferredAgentMode: PreferredAgentMode;
  /** Seconds, 1–5,256,000 (about 60 days). */
  preferredAgentTimeoutS: number;
  /** Seconds, 5–86,400. */
  offerTimeoutS: number;
  /** Team default or agent override: 0–1,000 or OFF; null (inherit) where the caller allows it. */
  inboxLimit: InboxLimit | null;
  /** ≥ 1, or null for no limit. */
  dailyLimit: number | null;
  /** Seconds, ≥ 0 (0 disables spacing). */
  autoParkSpacingS: number;
  presentNext: PresentNextPolicy;
}

export interface FieldError {
  field: string;
  message: string;
}

export const PREFERRED_AGENT_TIMEOUT_S = { min: 1, max: 5_256_000 } as const;
export const OFFER_TIMEOUT_S = { min: 5, max: 86_400 } as const;
export const INBOX_LIMIT = { min: 0, max: 1_000 } as const;
/** One day: a longer spacing would silently stop delivery; the bound is ours, not the SPEC's. */
export const AUTO_PARK_SPACING_MAX_S = 86_400;

function isInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

function intInRange(field: string, value: unknown, min: number, max: number, errors: FieldError[]): void {
  if (!isInt(value) || value < min || value > max) {
    errors.push({ field, message: `must be a whole number from ${min} to ${max}` });
  }
}

function oneOf(field: string, value: unknown, allowed: readonly string[], errors: FieldError[]): void {
  if (typeof value !== "string" || !allowed.includes(value)) {
    errors.push({ field, message: `must be one of ${allowed.join(", ")}` });
  }
}

/** An inbox limit: 0–1,000 or "OFF"; null only with `allowInherit` (an agent override). */
export function validateInboxLimit(
  value: unknown,
  field = "inboxLimit",
  options: { allowInherit?: boolean } = {},
): FieldError[] {
  if (value === "OFF") return [];
  if (value === null && options.allowInherit === true) return [];
  if (isInt(value) && value >= INBOX_LIMIT.min && value <= INBOX_LIMIT.max) return [];
  const inherit = options.allowInherit === true ? ", OFF or empty to inherit" : " or OFF";
  return [
    { field, message: `must be a whole number from ${INBOX_LIMIT.min} to ${INBOX_LIMIT.max}${inherit}` },
  ];
}

export function validateRoutingSettings(
  input: Partial<RoutingSettingsInput>,
  options: { inboxLimitMayInherit?: boolean } = {},
): FieldError[] {
  const errors: FieldError[] = [];
  if ("strategy" in input) oneOf("strategy", input.strategy, ROUTING_STRATEGIES, errors);
  if ("order" in input) oneOf("order", input.order, QUEUE_ORDERS, errors);
  if ("preferredAgentMode" in input)
    oneOf("preferredAgentMode", input.preferredAgentMode, PREFERRED_AGENT_MODES, errors);
  if ("presentNext" in input) oneOf("presentNext", input.presentNext, PRESENT_NEXT_POLICIES, errors);
  if ("routablePresences" in input) {
    const value: unknown = input.routablePresences;
    if (!Array.isArray(value) || value.length === 0) {
      errors.push({ field: "routablePresences", message: "must list at least one presence" });
    } else {
      const seen = new Set<unknown>();
      for (const p of value) {
        if (typeof p !== "string" || !(PRESENCES as readonly string[]).includes(p)) {
          errors.push({ field: "routablePresences", message: `must contain only ${PRESENCES.join(", ")}` });
          break;
        }
        if (seen.has(p)) {
          errors.push({ field: "routablePresences", message: `lists ${p} twice` });
          break;
        }
        seen.add(p);
      }
    }
  }
  if ("preferredAgentTimeoutS" in input) {
    const { min, max } = PREFERRED_AGENT_TIMEOUT_S;
    intInRange("preferredAgentTimeoutS", input.preferredAgentTimeoutS, min, max, errors);
  }
  if ("offerTimeoutS" in input) {
    intInRange("offerTimeoutS", input.offerTimeoutS, OFFER_TIMEOUT_S.min, OFFER_TIMEOUT_S.max, errors);
  }
  if ("inboxLimit" in input) {
    errors.push(
      ...validateInboxLimit(input.inboxLimit, "inboxLimit", { allowInherit: options.inboxLimitMayInherit }),
    );
  }
  if ("dailyLimit" in input) {
    const value: unknown = input.dailyLimit;
    if (value !== null && (!isInt(value) || value < 1)) {
      errors.push({
        field: "dailyLimit",
        message: "must be a whole number of at least 1, or empty for no limit",
      });
    }
  }
  if ("autoParkSpacingS" in input) {
    intInRange("autoParkSpacingS", input.autoParkSpacingS, 0, AUTO_PARK_SPACING_MAX_S, errors);
  }
  return errors;
}

import { describe, expect, it } from "vitest";
import {
  type RoutingSettingsInput,
  validateInboxLimit,
  validateRoutingSettings,
} from "../../src/engine/routing/validate.js";

// Inputs arrive as JSON: the cases include values the static type would not allow.
const check = (input: Record<string, unknown>) =>
  validateRoutingSettings(input as Partial<RoutingSettingsInput>).map((e) => e.field);

describe("routing settings validation", () => {
  it.each<[string, unknown, boolean]>([
    ["preferredAgentTimeoutS", 1, true],
    ["preferredAgentTimeoutS", 5_256_000, true],
    ["preferredAgentTimeoutS", 0, false],
    ["preferredAgentTimeoutS", 5_256_001, false],
    ["preferredAgentTimeoutS", 1.5, false],
    ["preferredAgentTimeoutS", Number.NaN, false],
    ["preferredAgentTimeoutS", "60", false],
    ["offerTimeoutS", 5, true],
    ["offerTimeoutS", 86_400, true],
    ["offerTimeoutS", 4, false],
    ["offerTimeoutS", 86_401, false],
    ["offerTimeoutS", null, false],
    ["inboxLimit", 0, true],
    ["inboxLimit", 1_000, true],
    ["inboxLimit", "OFF", true],
    ["inboxLimit", -1, false],
    ["inboxLimit", 1_001, false],
    ["inboxLimit", "off", false],
    ["inboxLimit", null, false],
    ["inboxLimit", Number.POSITIVE_INFINITY, false],
    ["dailyLimit", null, true],
    ["dailyLimit", 1, true],
    ["dailyLimit", 10_000, true],
    ["dailyLimit", 0, false],
    ["dailyLimit", 2.5, false],
    ["autoParkSpacingS", 0, true],
    ["autoParkSpacingS", 30, true],
    ["autoParkSpacingS", -1, false],
    ["autoParkSpacingS", 0.5, false],
    ["strategy", "MOST_BUSY", true],
    ["strategy", "ROUND_ROBIN", false],
    ["order", "SLA_REMAINING", true],
    ["order", "FIFO", false],
    ["preferredAgentMode", "WAIT_WHILE_BUSY", true],
    ["preferredAgentMode", "WAIT_FOREVER", false],
    ["presentNext", "OLDEST_PARKED", true],
    ["presentNext", "RANDOM", false],
    ["routablePresences", ["AVAILABLE", "BUSY"], true],
    ["routablePresences", [], false],
    ["routablePresences", ["AVAILABLE", "LUNCH"], false],
    ["routablePresences", ["AVAILABLE", "AVAILABLE"], false],
    ["routablePresences", "AVAILABLE", false],
  ])("%s = %j valid: %s", (field, value, valid) => {
    expect(check({ [field]: value })).toEqual(valid ? [] : [field]);
  });

  it("reports every bad field at once and ignores absent ones", () => {
    expect(check({ offerTimeoutS: 1, dailyLimit: 0, autoParkSpacingS: 30 })).toEqual([
      "offerTimeoutS",
      "dailyLimit",
    ]);
    expect(check({})).toEqual([]);
  });

  it("says what is allowed", () => {
    expect(validateRoutingSettings({ preferredAgentTimeoutS: 0 })).toEqual([
      { field: "preferredAgentTimeoutS", message: "must be a whole number from 1 to 5256000" },
    ]);
  });

  it("accepts null (inherit the team's) for an agent's inbox limit only when allowed", () => {
    expect(validateInboxLimit(null, "inboxLimit", { allowInherit: true })).toEqual([]);
    expect(validateInboxLimit(null)).toHaveLength(1);
    expect(validateRoutingSettings({ inboxLimit: null }, { inboxLimitMayInherit: true })).toEqual([]);
  });
});

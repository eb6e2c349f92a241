import { describe, expect, it } from "vitest";
import { effectiveInboxLimit, eligibleAgents } from "../../src/engine/routing/eligibility.js";
import { countToday, incrementDailyCount, tenantLocalDate } from "../../src/engine/routing/tenant-day.js";
import type {
  ExclusionReason,
  InboxLimit,
  RoutingAgent,
  RoutingContext,
  RoutingQueue,
  WaitingConversation,
} from "../../src/engine/routing/types.js";
import { agent, CTX, conv, NOW, queue, secondsAgo } from "./routing-fixtures.js";

function reasonFor(
  a: RoutingAgent,
  q: RoutingQueue = queue(),
  c: WaitingConversation = conv("c"),
  now: Date = NOW,
  ctx: RoutingContext = CTX,
): ExclusionReason | null {
  const result = eligibleAgents(c, q, [a], now, ctx);
  if (result.eligible.length === 1) {
    expect(result.excluded).toEqual([]);
    return null;
  }
  expect(result.excluded).toHaveLength(1);
  return result.excluded[0]!.reason;
}

const billing = (min: number | null = null) => ({ skillId: "billing", minProficiency: min });

describe("eligibility: one rule per row", () => {
  it.each<{
    name: string;
    agent: RoutingAgent;
    queue?: RoutingQueue;
    conversation?: WaitingConversation;
    ctx?: RoutingContext;
    expected: ExclusionReason | null;
  }>([
    { name: "a routable team member", agent: agent("a"), expected: null },
    // Queue-level
    {
      name: "auto-assign off",
      agent: agent("a"),
      queue: queue({ autoAssign: false }),
      expected: "AUTO_ASSIGN_OFF",
    },
    {
      name: "business hours required and closed",
      agent: agent("a"),
      queue: queue({ businessHoursOnly: true }),
      ctx: { ...CTX, businessOpen: false },
      expected: "OUTSIDE_BUSINESS_HOURS",
    },
    {
      name: "business hours required and open",
      agent: agent("a"),
      queue: queue({ businessHoursOnly: true }),
      expected: null,
    },
    {
      name: "closed calendar does not matter when not required",
      agent: agent("a"),
      ctx: { ...CTX, businessOpen: false },
      expected: null,
    },
    // Membership
    { name: "team not a member", agent: agent("a", { teamId: "team-2" }), expected: "NOT_MEMBER" },
    { name: "no team, not a member", agent: agent("a", { teamId: null }), expected: "NOT_MEMBER" },
    {
      name: "direct member outside the member teams",
      agent: agent("a", { teamId: "team-2" }),
      queue: queue({ memberAgentIds: ["a"], memberTeamIds: [] }),
      expected: null,
    },
    // Inbox limit
    { name: "agent limit OFF", agent: agent("a", { inboxLimit: "OFF" }), expected: "INBOX_OFF" },
    {
      name: "team limit OFF, agent inherits",
      agent: agent("a", { teamInboxLimit: "OFF" }),
      expected: "INBOX_OFF",
    },
    {
      name: "team limit OFF, agent number overrides",
      agent: agent("a", { teamInboxLimit: "OFF", inboxLimit: 2 }),
      expected: null,
    },
    {
      name: "agent OFF wins over team number",
      agent: agent("a", { teamInboxLimit: 10, inboxLimit: "OFF" }),
      expected: "INBOX_OFF",
    },
    // Presence and login
    {
      name: "busy, queue routes AVAILABLE only",
      agent: agent("a", { presence: "BUSY" }),
      expected: "PRESENCE",
    },
    { name: "away", agent: agent("a", { presence: "AWAY" }), expected: "PRESENCE" },
    { name: "offline", agent: agent("a", { presence: "OFFLINE" }), expected: "PRESENCE" },
    {
      name: "busy, queue also routes BUSY",
      agent: agent("a", { presence: "BUSY" }),
      queue: queue({ routablePresences: ["AVAILABLE", "BUSY"] }),
      expected: null,
    },
    { name: "logged out, login required", agent: agent("a", { loggedIn: false }), expected: "NOT_LOGGED_IN" },
    {
      name: "logged out, login not required",
      agent: agent("a", { loggedIn: false }),
      queue: queue({ onlyLoggedIn: false }),
      expected: null,
    },
    // Capacity counts ACTIVE + PARKED + OFFERED
    {
      name: "one below the limit",
      agent: agent("a", { inboxLimit: 3, activeCount: 1, parkedCount: 1 }),
      expected: null,
    },
    {
      name: "at the limit via active+parked+offered",
      agent: agent("a", { inboxLimit: 3, activeCount: 1, parkedCount: 1, offeredCount: 1 }),
      expected: "AT_CAPACITY",
    },
    { name: "limit 0", agent: agent("a", { inboxLimit: 0 }), expected: "AT_CAPACITY" },
    {
      name: "team default applies",
      agent: agent("a", { teamInboxLimit: 2, parkedCount: 2 }),
      expected: "AT_CAPACITY",
    },
    {
      name: "tenant default when neither sets one",
      agent: agent("a", { teamInboxLimit: null, parkedCount: 1 }),
      ctx: { ...CTX, defaultInboxLimit: 1 },
      expected: "AT_CAPACITY",
    },
    // Offers
    {
      name: "pending offer, offer queue",
      agent: agent("a", { offeredCount: 1 }),
      queue: queue({ offerRequired: true }),
      expected: "PENDING_OFFER",
    },
    { name: "pending offer, assign queue", agent: agent("a", { offeredCount: 1 }), expected: null },
    {
      name: "rejected or timed out this conversation",
      agent: agent("a"),
      conversation: conv("c", { excludedAgentIds: ["z", "a"] }),
      expected: "OFFER_DECLINED",
    },
    // Auto-parking
    {
      name: "auto-parking off and something active",
      agent: agent("a", { activeCount: 1 }),
      queue: queue({ autoParking: false }),
      expected: "HAS_ACTIVE",
    },
    {
      name: "auto-parking off, only parked ones",
      agent: agent("a", { parkedCount: 2 }),
      queue: queue({ autoParking: false }),
      expected: null,
    },
    { name: "auto-parking on and something active", agent: agent("a", { activeCount: 1 }), expected: null },
    // Daily limit (today in Berlin is 2024-06-03)
    {
      name: "daily limit reached today",
      agent: agent("a", { dailyCount: 3, dailyCountDate: "2024-06-03" }),
      queue: queue({ dailyLimit: 3 }),
      expected: "DAILY_LIMIT",
    },
    {
      name: "daily limit not reached",
      agent: agent("a", { dailyCount: 2, dailyCountDate: "2024-06-03" }),
      queue: queue({ dailyLimit: 3 }),
      expected: null,
    },
    {
      name: "yesterday's count is stale",
      agent: agent("a", { dailyCount: 99, dailyCountDate: "2024-06-02" }),
      queue: queue({ dailyLimit: 3 }),
      expected: null,
    },
    {
      name: "no daily limit",
      agent: agent("a", { dailyCount: 99, dailyCountDate: "2024-06-03" }),
      expected: null,
    },
    // Auto-park spacing (30 s)
    {
      name: "delivered 29.999 s ago",
      agent: agent("a", { lastAutoDeliveredAt: new Date(NOW.getTime() - 29_999) }),
      expected: "AUTO_PARK_SPACING",
    },
    {
      name: "delivered exactly 30 s ago",
      agent: agent("a", { lastAutoDeliveredAt: secondsAgo(30) }),
      expected: null,
    },
    {
      name: "spacing disabled",
      agent: agent("a", { lastAutoDeliveredAt: secondsAgo(0) }),
      queue: queue({ autoParkSpacingS: 0 }),
      expected: null,
    },
    {
      name: "spacing ignored without auto-parking (idle agent)",
      agent: agent("a", { lastAutoDeliveredAt: secondsAgo(0) }),
      queue: queue({ autoParking: false }),
      expected: null,
    },
    {
      name: "configured spacing of 120 s",
      agent: agent("a", { lastAutoDeliveredAt: secondsAgo(60) }),
      queue: queue({ autoParkSpacingS: 120 }),
      expected: "AUTO_PARK_SPACING",
    },
    // Skills
    {
      name: "missing a required skill",
      agent: agent("a", { skills: [{ skillId: "sales", proficiency: 5 }] }),
      conversation: conv("c", { requiredSkills: [billing()] }),
      expected: "MISSING_SKILL",
    },
    {
      name: "holds one of two required skills",
      agent: agent("a", { skills: [{ skillId: "billing", proficiency: 5 }] }),
      conversation: conv("c", { requiredSkills: [billing(), { skillId: "german", minProficiency: null }] }),
      expected: "MISSING_SKILL",
    },
    {
      name: "below the minimum proficiency",
      agent: agent("a", { skills: [{ skillId: "billing", proficiency: 2 }] }),
      conversation: conv("c", { requiredSkills: [billing(3)] }),
      expected: "SKILL_BELOW_MINIMUM",
    },
    {
      name: "exactly the minimum proficiency",
      agent: agent("a", { skills: [{ skillId: "billing", proficiency: 3 }] }),
      conversation: conv("c", { requiredSkills: [billing(3)] }),
      expected: null,
    },
  ])("$name → $expected", ({ agent: a, queue: q, conversation, ctx, expected }) => {
    expect(reasonFor(a, q, conversation, NOW, ctx)).toBe(expected);
  });

  it("reports the first reason in check order", () => {
    const a = agent("a", { presence: "AWAY", loggedIn: false, parkedCount: 5, lastAutoDeliveredAt: NOW });
    expect(reasonFor(a)).toBe("PRESENCE");
    expect(reasonFor({ ...a, presence: "AVAILABLE" })).toBe("NOT_LOGGED_IN");
    expect(reasonFor({ ...a, presence: "AVAILABLE", loggedIn: true })).toBe("AT_CAPACITY");
    expect(reasonFor({ ...a, presence: "AVAILABLE", loggedIn: true, parkedCount: 0 })).toBe(
      "AUTO_PARK_SPACING",
    );
  });

  it("splits a mixed list into eligible (input order) and excluded with reasons", () => {
    const agents = [
      agent("x"),
      agent("y", { presence: "BUSY" }),
      agent("z"),
      agent("w", { teamId: "other" }),
    ];
    const result = eligibleAgents(conv("c"), queue(), agents, NOW, CTX);
    expect(result.eligible.map((a) => a.id)).toEqual(["x", "z"]);
    expect(result.excluded).toEqual([
      { agentId: "y", reason: "PRESENCE" },
      { agentId: "w", reason: "NOT_MEMBER" },
    ]);
  });
});

describe("effective inbox limit", () => {
  it.each<[InboxLimit | null, InboxLimit | null, InboxLimit]>([
    [null, 4, 4],
    [7, 4, 7],
    [0, 4, 0],
    ["OFF", 4, "OFF"],
    [null, "OFF", "OFF"],
    [3, "OFF", 3],
    [null, null, 5],
  ])("agent %j, team %j → %j", (agentLimit, teamLimit, expected) => {
    expect(effectiveInboxLimit(agentLimit, teamLimit)).toBe(expected);
  });

  it("uses the tenant fallback only when both are unset", () => {
    expect(effectiveInboxLimit(null, null, "OFF")).toBe("OFF");
    expect(effectiveInboxLimit(null, 2, "OFF")).toBe(2);
  });
});

describe("daily limit resets at the tenant's local midnight", () => {
  // Limit 1, one delivery counted on `countDate`: excluded on that local day, eligible after.
  const limited = queue({ dailyLimit: 1 });
  const dailyReason = (timeZone: string, countDate: string, at: string) =>
    reasonFor(agent("a", { dailyCount: 1, dailyCountDate: countDate }), limited, conv("c"), new Date(at), {
      ...CTX,
      timeZone,
    });

  it.each([
    // New York, spring forward (2024-03-10, 02:00 EST → 03:00 EDT): midnight before is still EST (-05:00).
    ["America/New_York", "2024-03-09", "2024-03-10T04:59:59.999Z", "DAILY_LIMIT"],
    ["America/New_York", "2024-03-09", "2024-03-10T05:00:00.000Z", null],
    // The next midnight is EDT (-04:00): a fixed -05:00 offset would reset an hour late.
    ["America/New_York", "2024-03-10", "2024-03-11T03:59:59.999Z", "DAILY_LIMIT"],
    ["America/New_York", "2024-03-10", "2024-03-11T04:00:00.000Z", null],
    // Fall back (2024-11-03): that day lasts 25 h; midnight after it is EST again.
    ["America/New_York", "2024-11-03", "2024-11-04T04:59:59.999Z", "DAILY_LIMIT"],
    ["America/New_York", "2024-11-03", "2024-11-04T05:00:00.000Z", null],
    // Santiago skips local midnight (2024-09-08 00:00 -04 → 01:00 -03): the new day still starts.
    ["America/Santiago", "2024-09-07", "2024-09-08T03:59:59.999Z", "DAILY_LIMIT"],
    ["America/Santiago", "2024-09-07", "2024-09-08T04:00:00.000Z", null],
    // Kolkata (+05:30): the UTC date is still the previous day while the local day has changed.
    ["Asia/Kolkata", "2024-06-03", "2024-06-03T18:29:59.999Z", "DAILY_LIMIT"],
    ["Asia/Kolkata", "2024-06-03", "2024-06-03T18:30:00.000Z", null],
  ] as const)("%s counted %s, at %s → %s", (zone, countDate, at, expected) => {
    expect(dailyReason(zone, countDate, at)).toBe(expected);
  });

  it.each([
    ["2024-03-10T04:59:59.999Z", "America/New_York", "2024-03-09"],
    ["2024-03-10T05:00:00.000Z", "America/New_York", "2024-03-10"],
    ["2024-10-27T00:59:59.999Z", "Europe/Berlin", "2024-10-27"],
    ["2024-10-26T21:59:59.999Z", "Europe/Berlin", "2024-10-26"],
    ["2024-10-26T22:00:00.000Z", "Europe/Berlin", "2024-10-27"],
    ["2024-12-31T23:30:00.000Z", "UTC", "2024-12-31"],
  ])("tenantLocalDate(%s, %s) = %s", (at, zone, expected) => {
    expect(tenantLocalDate(new Date(at), zone)).toBe(expected);
  });

  it("refuses an unknown time zone instead of routing in UTC", () => {
    expect(() => tenantLocalDate(NOW, "Mars/Olympus_Mons")).toThrow(RangeError);
  });

  it("counts and increments per local day", () => {
    expect(countToday(4, "2024-06-03", "2024-06-03")).toBe(4);
    expect(countToday(4, "2024-06-02", "2024-06-03")).toBe(0);
    expect(countToday(4, null, "2024-06-03")).toBe(0);
    expect(incrementDailyCount(4, "2024-06-03", "2024-06-03")).toEqual({
      dailyCount: 5,
      dailyCountDate: "2024-06-03",
    });
    expect(incrementDailyCount(4, "2024-06-02", "2024-06-03")).toEqual({
      dailyCount: 1,
      dailyCountDate: "2024-06-03",
    });
  });
});

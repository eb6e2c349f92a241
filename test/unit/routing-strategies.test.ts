import { describe, expect, it } from "vitest";
import type { RoutingStrategy } from "../../src/engine/domain.js";
import { preferredAgentChoice, preferredWaitUntil, rankAgents } from "../../src/engine/routing/strategies.js";
import type { ExclusionReason, RoutingAgent } from "../../src/engine/routing/types.js";
import { agent, conv, minutesAgo, NOW, queue } from "./routing-fixtures.js";

const skill = (skillId: string, proficiency: number) => ({ skillId, proficiency });
const req = (...skillIds: string[]) => skillIds.map((skillId) => ({ skillId, minProficiency: null }));
const at = (iso: string) => new Date(iso);

describe("strategies rank eligible agents", () => {
  it.each<{
    name: string;
    strategy: RoutingStrategy;
    agents: RoutingAgent[];
    skills?: string[];
    expected: string[];
  }>([
    // LEAST_ACTIVE: load = ACTIVE + PARKED + OFFERED
    {
      name: "fewest in use first",
      strategy: "LEAST_ACTIVE",
      agents: [agent("two", { parkedCount: 2 }), agent("zero"), agent("one", { offeredCount: 1 })],
      expected: ["zero", "one", "two"],
    },
    {
      name: "offers count as load",
      strategy: "LEAST_ACTIVE",
      agents: [agent("offered", { offeredCount: 2 }), agent("active", { activeCount: 1 })],
      expected: ["active", "offered"],
    },
    {
      name: "tie → least recently assigned, never assigned first",
      strategy: "LEAST_ACTIVE",
      agents: [
        agent("recent", { lastAssignedAt: at("2024-06-03T11:00:00Z") }),
        agent("never"),
        agent("older", { lastAssignedAt: at("2024-06-03T09:00:00Z") }),
      ],
      expected: ["never", "older", "recent"],
    },
    {
      name: "full tie → id",
      strategy: "LEAST_ACTIVE",
      agents: [agent("b"), agent("c"), agent("a")],
      expected: ["a", "b", "c"],
    },
    // PROFICIENCY: average level over the required skills
    {
      name: "highest level in the required skill",
      strategy: "PROFICIENCY",
      agents: [
        agent("lvl2", { skills: [skill("billing", 2)] }),
        agent("lvl5", { skills: [skill("billing", 5)] }),
      ],
      skills: ["billing"],
      expected: ["lvl5", "lvl2"],
    },
    {
      name: "average over two skills (5+1 loses to 4+4), unrelated skills ignored",
      strategy: "PROFICIENCY",
      agents: [
        agent("spiky", { skills: [skill("billing", 5), skill("german", 1), skill("sales", 9)] }),
        agent("even", { skills: [skill("billing", 4), skill("german", 4)] }),
      ],
      skills: ["billing", "german"],
      expected: ["even", "spiky"],
    },
    {
      name: "equal proficiency → least active",
      strategy: "PROFICIENCY",
      agents: [
        agent("busy", { skills: [skill("billing", 3)], parkedCount: 2 }),
        agent("free", { skills: [skill("billing", 3)] }),
      ],
      skills: ["billing"],
      expected: ["free", "busy"],
    },
    {
      name: "equal proficiency and load → least recently assigned",
      strategy: "PROFICIENCY",
      agents: [
        agent("recent", { skills: [skill("billing", 3)], lastAssignedAt: at("2024-06-03T11:00:00Z") }),
        agent("older", { skills: [skill("billing", 3)], lastAssignedAt: at("2024-06-01T11:00:00Z") }),
      ],
      skills: ["billing"],
      expected: ["older", "recent"],
    },
    {
      name: "no required skills → tie-breaks only",
      strategy: "PROFICIENCY",
      agents: [agent("expert", { skills: [skill("billing", 9)], parkedCount: 1 }), agent("novice")],
      expected: ["novice", "expert"],
    },
    // LEAST_BUSY: utilisation = load / limit
    {
      name: "lowest utilisation, not lowest load",
      strategy: "LEAST_BUSY",
      agents: [
        agent("2of4", { parkedCount: 2, inboxLimit: 4 }),
        agent("3of10", { parkedCount: 3, inboxLimit: 10 }),
      ],
      expected: ["3of10", "2of4"],
    },
    {
      name: "equal utilisation (1/5 = 2/10) → lower load",
      strategy: "LEAST_BUSY",
      agents: [
        agent("2of10", { parkedCount: 2, inboxLimit: 10 }),
        agent("1of5", { parkedCount: 1, inboxLimit: 5 }),
      ],
      expected: ["1of5", "2of10"],
    },
    // MOST_BUSY: highest utilisation under the limit
    {
      name: "highest utilisation first (packing)",
      strategy: "MOST_BUSY",
      agents: [
        agent("0of5", { inboxLimit: 5 }),
        agent("4of5", { parkedCount: 4, inboxLimit: 5 }),
        agent("3of10", { parkedCount: 3, inboxLimit: 10 }),
      ],
      expected: ["4of5", "3of10", "0of5"],
    },
    {
      name: "equal utilisation → higher load, then least recently assigned",
      strategy: "MOST_BUSY",
      agents: [
        agent("1of5", { parkedCount: 1, inboxLimit: 5 }),
        agent("2of10-recent", { parkedCount: 2, inboxLimit: 10, lastAssignedAt: at("2024-06-03T11:00:00Z") }),
        agent("2of10-old", { parkedCount: 2, inboxLimit: 10, lastAssignedAt: at("2024-06-02T11:00:00Z") }),
      ],
      expected: ["2of10-old", "2of10-recent", "1of5"],
    },
  ])("$strategy: $name", ({ strategy, agents, skills, expected }) => {
    const c = conv("c", { requiredSkills: req(...(skills ?? [])) });
    expect(rankAgents(strategy, c, agents).map((s) => s.agentId)).toEqual(expected);
  });

  it("PREFERRED_AGENT puts the preferred agent first, then ranks by proficiency", () => {
    const agents = [
      agent("expert", { skills: [skill("billing", 9)] }),
      agent("pref", { skills: [skill("billing", 1)], parkedCount: 3 }),
      agent("mid", { skills: [skill("billing", 5)] }),
    ];
    const c = conv("c", { requiredSkills: req("billing"), preferredAgentId: "pref" });
    const ranked = rankAgents("PREFERRED_AGENT", c, agents);
    expect(ranked.map((s) => s.agentId)).toEqual(["pref", "expert", "mid"]);
    expect(ranked[0]!.detail.preferred).toBe(true);
    expect(ranked[1]!.detail.preferred).toBeUndefined();
  });

  it.each<[RoutingStrategy, number]>([
    ["LEAST_ACTIVE", 3],
    ["PROFICIENCY", 3.5],
    ["LEAST_BUSY", 0.375],
    ["MOST_BUSY", 0.375],
  ])("%s score is its primary metric (%d)", (strategy, expected) => {
    const a = agent("a", {
      skills: [skill("billing", 4), skill("german", 3)],
      activeCount: 1,
      parkedCount: 2,
      inboxLimit: 8,
      lastAssignedAt: at("2024-06-03T10:00:00Z"),
    });
    const [scored] = rankAgents(strategy, conv("c", { requiredSkills: req("billing", "german") }), [a]);
    expect(scored!.score).toBe(expected);
    expect(scored!.detail).toEqual({
      load: 3,
      limit: 8,
      proficiency: 3.5,
      lastAssignedMs: Date.parse("2024-06-03T10:00:00.000Z"),
    });
  });
});

describe("preferred agent: take, wait or fall back", () => {
  const TIMEOUT_S = 600;
  const enqueuedAt = minutesAgo(5); // 300 s before NOW
  const until = new Date(enqueuedAt.getTime() + TIMEOUT_S * 1000);

  it.each<{
    name: string;
    mode: "WAIT_WHILE_OFFLINE" | "WAIT_WHILE_BUSY";
    preferred?: RoutingAgent;
    reasons: ExclusionReason[];
    expected: string;
  }>([
    { name: "eligible", mode: "WAIT_WHILE_OFFLINE", reasons: [], expected: "preferred" },
    {
      name: "offline",
      mode: "WAIT_WHILE_OFFLINE",
      preferred: agent("p", { presence: "OFFLINE" }),
      reasons: ["PRESENCE"],
      expected: "wait:PREFERRED_OFFLINE",
    },
    {
      name: "logged out",
      mode: "WAIT_WHILE_OFFLINE",
      preferred: agent("p", { loggedIn: false }),
      reasons: ["NOT_LOGGED_IN"],
      expected: "wait:PREFERRED_OFFLINE",
    },
    {
      name: "busy, offline mode does not wait",
      mode: "WAIT_WHILE_OFFLINE",
      preferred: agent("p", { presence: "BUSY" }),
      reasons: ["PRESENCE"],
      expected: "fallback:PREFERRED_INELIGIBLE",
    },
    {
      name: "at capacity, offline mode does not wait",
      mode: "WAIT_WHILE_OFFLINE",
      reasons: ["AT_CAPACITY"],
      expected: "fallback:PREFERRED_INELIGIBLE",
    },
    {
      name: "offline and full, offline mode: would not be eligible back online",
      mode: "WAIT_WHILE_OFFLINE",
      preferred: agent("p", { presence: "OFFLINE" }),
      reasons: ["PRESENCE", "AT_CAPACITY"],
      expected: "fallback:PREFERRED_INELIGIBLE",
    },
    {
      name: "busy, busy mode waits",
      mode: "WAIT_WHILE_BUSY",
      preferred: agent("p", { presence: "BUSY" }),
      reasons: ["PRESENCE"],
      expected: "wait:PREFERRED_BUSY",
    },
    {
      name: "at capacity, busy mode waits",
      mode: "WAIT_WHILE_BUSY",
      reasons: ["AT_CAPACITY"],
      expected: "wait:PREFERRED_BUSY",
    },
    {
      name: "pending offer, busy mode waits",
      mode: "WAIT_WHILE_BUSY",
      reasons: ["PENDING_OFFER"],
      expected: "wait:PREFERRED_BUSY",
    },
    {
      name: "spaced out, busy mode waits",
      mode: "WAIT_WHILE_BUSY",
      reasons: ["AUTO_PARK_SPACING"],
      expected: "wait:PREFERRED_BUSY",
    },
    {
      name: "offline and full, busy mode waits",
      mode: "WAIT_WHILE_BUSY",
      preferred: agent("p", { presence: "OFFLINE" }),
      reasons: ["PRESENCE", "AT_CAPACITY"],
      expected: "wait:PREFERRED_OFFLINE",
    },
    ...(
      [
        "NOT_MEMBER",
        "INBOX_OFF",
        "DAILY_LIMIT",
        "OFFER_DECLINED",
        "MISSING_SKILL",
        "SKILL_BELOW_MINIMUM",
      ] as const
    ).map((reason) => ({
      name: `offline but ${reason}: waiting cannot help`,
      mode: "WAIT_WHILE_BUSY" as const,
      preferred: agent("p", { presence: "OFFLINE" }),
      reasons: ["PRESENCE", reason] as ExclusionReason[],
      expected: "fallback:PREFERRED_INELIGIBLE",
    })),
  ])("$mode, $name → $expected", ({ mode, preferred, reasons, expected }) => {
    const c = conv("c", { enqueuedAt, preferredAgentId: "p" });
    const q = queue({
      strategy: "PREFERRED_AGENT",
      preferredAgentMode: mode,
      preferredAgentTimeoutS: TIMEOUT_S,
    });
    const choice = preferredAgentChoice(c, q, preferred ?? agent("p"), reasons, NOW);
    const label = choice.kind === "preferred" ? "preferred" : `${choice.kind}:${choice.reason}`;
    expect(label).toBe(expected);
    if (choice.kind === "wait") expect(choice.until).toEqual(until);
  });

  it.each([
    ["1 ms before the timeout", -1, "wait"],
    ["exactly at the timeout", 0, "fallback"],
    ["after the timeout", 1, "fallback"],
  ] as const)("%s → %s", (_name, offsetMs, expected) => {
    const c = conv("c", { enqueuedAt, preferredAgentId: "p" });
    const q = queue({ strategy: "PREFERRED_AGENT", preferredAgentTimeoutS: TIMEOUT_S });
    const now = new Date(until.getTime() + offsetMs);
    const choice = preferredAgentChoice(c, q, agent("p", { presence: "OFFLINE" }), ["PRESENCE"], now);
    expect(choice.kind).toBe(expected);
    if (choice.kind === "fallback") expect(choice.reason).toBe("PREFERRED_TIMEOUT");
  });

  it("takes an eligible preferred agent even after the timeout", () => {
    const c = conv("c", { enqueuedAt, preferredAgentId: "p" });
    const q = queue({ strategy: "PREFERRED_AGENT", preferredAgentTimeoutS: 1 });
    expect(preferredAgentChoice(c, q, agent("p"), [], NOW)).toEqual({ kind: "preferred", agentId: "p" });
  });

  it("falls back at once without a preferred agent or when it was not loaded", () => {
    const q = queue({ strategy: "PREFERRED_AGENT" });
    expect(preferredAgentChoice(conv("c"), q, undefined, [], NOW)).toEqual({
      kind: "fallback",
      reason: "NO_PREFERRED_AGENT",
    });
    expect(preferredAgentChoice(conv("c", { preferredAgentId: "gone" }), q, undefined, [], NOW)).toEqual({
      kind: "fallback",
      reason: "PREFERRED_NOT_LOADED",
    });
  });

  it("waits until enqueuedAt + timeout, up to the 5,256,000 s maximum", () => {
    const c = conv("c", { enqueuedAt: at("2024-01-01T00:00:00Z") });
    expect(preferredWaitUntil(c, { preferredAgentTimeoutS: 5_256_000 })).toEqual(at("2024-03-01T20:00:00Z"));
  });
});

import { describe, expect, it } from "vitest";
import { planAssignments, type RoutingDecision, TOP_CANDIDATES } from "../../src/engine/routing/assign.js";
import { eligibleAgents } from "../../src/engine/routing/eligibility.js";
import { rankAgents } from "../../src/engine/routing/strategies.js";
import type { RoutingAgent } from "../../src/engine/routing/types.js";
import { agent, CTX, conv, minutesAgo, NOW, queue, secondsAgo, snapshot } from "./routing-fixtures.js";

const summary = (d: RoutingDecision) =>
  d.agentId === undefined ? `${d.conversationId}:${d.kind}` : `${d.conversationId}:${d.kind}:${d.agentId}`;
const convs = (n: number) =>
  Array.from({ length: n }, (_, i) => conv(`c${i}`, { enqueuedAt: minutesAgo(100 - i) }));

describe("planAssignments", () => {
  it("walks the queue in order and spreads LEAST_ACTIVE load without exceeding limits", () => {
    const plan = planAssignments(
      snapshot({
        queue: queue({ autoParkSpacingS: 0 }),
        agents: [agent("a", { inboxLimit: 2 }), agent("b", { inboxLimit: 3, parkedCount: 1 })],
        waiting: convs(6),
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["c0:assign:a", "c1:assign:b", "c2:assign:a", "c3:assign:b"]);
    expect(plan.unplanned).toBe(2);
    expect(plan.stopReason).toBe("NO_AGENT_AVAILABLE");
  });

  it("stops at maxDeliveries with `capped` set; unplaceable conversations do not count", () => {
    const waiting = convs(8);
    // c1 needs a skill nobody has: it is decided (none) but does not use the cap.
    waiting[1] = conv("c1", {
      enqueuedAt: minutesAgo(99),
      requiredSkills: [{ skillId: "x", minProficiency: null }],
    });
    const snap = snapshot({
      queue: queue({ autoParkSpacingS: 0 }),
      agents: [agent("a", { inboxLimit: 20 })],
      waiting,
    });
    const plan = planAssignments(snap, NOW, 3);
    expect(plan.decisions.map(summary)).toEqual(["c0:assign:a", "c1:none", "c2:assign:a", "c3:assign:a"]);
    expect(plan.capped).toBe(true);
    expect(plan.unplanned).toBe(4);
    expect(plan.stopReason).toBeNull();
    const all = planAssignments(snap, NOW);
    expect(all.capped).toBe(false);
    expect(all.decisions.filter((d) => d.kind === "assign")).toHaveLength(7);
  });

  it("delivers at most one conversation per agent per pass with 30 s spacing", () => {
    const plan = planAssignments(
      snapshot({
        agents: [agent("a", { inboxLimit: 10 }), agent("b", { inboxLimit: 10 })],
        waiting: convs(5),
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["c0:assign:a", "c1:assign:b"]);
    expect(plan.unplanned).toBe(3);
  });

  it("skips an agent whose last automatic delivery is within the spacing", () => {
    const plan = planAssignments(
      snapshot({
        agents: [
          agent("a", { lastAutoDeliveredAt: secondsAgo(10) }),
          agent("b", { lastAutoDeliveredAt: secondsAgo(30) }),
        ],
        waiting: convs(1),
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["c0:assign:b"]);
    expect(plan.decisions[0]!.excluded).toEqual({ AUTO_PARK_SPACING: 1 });
  });

  it("consumes the daily limit within the batch", () => {
    const plan = planAssignments(
      snapshot({
        queue: queue({ autoParkSpacingS: 0, dailyLimit: 3 }),
        agents: [agent("a", { inboxLimit: 10, dailyCount: 1, dailyCountDate: "2024-06-03" })],
        waiting: convs(5),
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["c0:assign:a", "c1:assign:a"]);
    expect(plan.today).toBe("2024-06-03");
  });

  it("with auto-parking off, delivers only to agents with nothing active", () => {
    const plan = planAssignments(
      snapshot({
        queue: queue({ autoParking: false, autoParkSpacingS: 0 }),
        agents: [agent("busy", { activeCount: 1 }), agent("idle", { parkedCount: 2 })],
        waiting: convs(3),
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["c0:assign:idle"]);
    expect(plan.decisions[0]!.excluded).toEqual({ HAS_ACTIVE: 1 });
  });

  it("offers instead of assigning, one pending offer per agent, with the offer deadline", () => {
    const plan = planAssignments(
      snapshot({
        queue: queue({ offerRequired: true, offerTimeoutS: 45, autoParkSpacingS: 0 }),
        agents: [agent("a", { inboxLimit: 10 }), agent("b", { inboxLimit: 10, offeredCount: 1 }), agent("c")],
        waiting: convs(3),
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["c0:offer:a", "c1:offer:c"]);
    expect(plan.decisions[0]!.offerExpiresAt).toEqual(new Date(NOW.getTime() + 45_000));
    expect(plan.decisions[0]!.excluded).toEqual({ PENDING_OFFER: 1 });
    expect(plan.decisions[1]!.excluded).toEqual({ PENDING_OFFER: 2 });
    expect(plan.stopReason).toBe("NO_AGENT_AVAILABLE");
  });

  it("never re-offers to the agent that rejected or let the offer time out; the next agent gets it", () => {
    const agents = [agent("first"), agent("second", { parkedCount: 1 })];
    const q = queue({ offerRequired: true });
    const before = planAssignments(snapshot({ queue: q, agents, waiting: [conv("c")] }), NOW);
    expect(before.decisions.map(summary)).toEqual(["c:offer:first"]);
    const after = planAssignments(
      snapshot({ queue: q, agents, waiting: [conv("c", { excludedAgentIds: ["first"] })] }),
      NOW,
    );
    expect(after.decisions.map(summary)).toEqual(["c:offer:second"]);
    expect(after.decisions[0]!.excluded).toEqual({ OFFER_DECLINED: 1 });
    const both = planAssignments(
      snapshot({ queue: q, agents, waiting: [conv("c", { excludedAgentIds: ["first", "second"] })] }),
      NOW,
    );
    expect(both.decisions.map(summary)).toEqual(["c:none"]);
    expect(both.decisions[0]!.note).toBe("NO_ELIGIBLE_AGENT");
  });

  it("leaves a conversation nobody can take and continues with the next", () => {
    const plan = planAssignments(
      snapshot({
        agents: [agent("a", { skills: [{ skillId: "billing", proficiency: 2 }] }), agent("b")],
        waiting: [
          conv("german", { priority: 5, requiredSkills: [{ skillId: "german", minProficiency: null }] }),
          conv("expert", { priority: 4, requiredSkills: [{ skillId: "billing", minProficiency: 3 }] }),
          conv("plain"),
        ],
      }),
      NOW,
    );
    expect(plan.decisions.map(summary)).toEqual(["german:none", "expert:none", "plain:assign:a"]);
    expect(plan.decisions[0]!.excluded).toEqual({ MISSING_SKILL: 2 });
    expect(plan.decisions[1]!.excluded).toEqual({ MISSING_SKILL: 1, SKILL_BELOW_MINIMUM: 1 });
  });

  it.each([
    ["AUTO_ASSIGN_OFF", snapshot({ queue: queue({ autoAssign: false }) })],
    ["OUTSIDE_BUSINESS_HOURS", snapshot({ queue: queue({ businessHoursOnly: true }), businessOpen: false })],
  ] as const)("stops the whole queue: %s", (reason, base) => {
    const plan = planAssignments({ ...base, agents: [agent("a")], waiting: convs(3) }, NOW);
    expect(plan).toEqual({
      queueId: "q-1",
      decisions: [],
      unplanned: 3,
      stopReason: reason,
      today: "2024-06-03",
      capped: false,
    });
  });

  it("keeps candidates compact: top 5 eligible plus exclusion counts that add up", () => {
    const agents: RoutingAgent[] = [
      ...Array.from({ length: 8 }, (_, i) => agent(`ok${i}`, { parkedCount: i % 3 })),
      agent("away", { presence: "AWAY" }),
      agent("full", { parkedCount: 5 }),
      agent("outsider", { teamId: "other" }),
      agent("dup"),
      agent("dup", { presence: "OFFLINE" }),
    ];
    const plan = planAssignments(snapshot({ agents, waiting: [conv("c")] }), NOW);
    const d = plan.decisions[0]!;
    expect(d.candidates).toHaveLength(TOP_CANDIDATES);
    expect(d.candidates.every((c) => c.eligible && c.reason === undefined)).toBe(true);
    expect(d.candidates.map((c) => c.agentId)).toEqual(["dup", "ok0", "ok3", "ok6", "ok1"]);
    expect(d.candidates.map((c) => c.score)).toEqual([0, 0, 0, 0, 1]);
    expect(d.eligibleCount).toBe(9);
    expect(d.excluded).toEqual({ PRESENCE: 1, AT_CAPACITY: 1, NOT_MEMBER: 1 });
    expect(JSON.stringify(d).length).toBeLessThan(1200);
  });

  it("chooses what eligibleAgents + rankAgents choose for a single conversation", () => {
    const agents = [
      agent("a", { skills: [{ skillId: "s", proficiency: 3 }], parkedCount: 1 }),
      agent("b", { skills: [{ skillId: "s", proficiency: 5 }], parkedCount: 4 }),
      agent("c", { skills: [{ skillId: "s", proficiency: 5 }], parkedCount: 2, inboxLimit: 3 }),
      agent("d", { skills: [{ skillId: "s", proficiency: 1 }], inboxLimit: 1 }),
    ];
    const c = conv("x", { requiredSkills: [{ skillId: "s", minProficiency: null }] });
    for (const strategy of ["LEAST_ACTIVE", "PROFICIENCY", "LEAST_BUSY", "MOST_BUSY"] as const) {
      const q = queue({ strategy });
      const { eligible } = eligibleAgents(c, q, agents, NOW, CTX);
      const expected = rankAgents(strategy, c, eligible);
      const d = planAssignments(snapshot({ queue: q, agents, waiting: [c] }), NOW).decisions[0]!;
      expect(d.candidates.map((x) => [x.agentId, x.score, x.detail])).toEqual(
        expected.slice(0, TOP_CANDIDATES).map((x) => [x.agentId, x.score, x.detail]),
      );
    }
  });
});

describe("planAssignments: preferred agent", () => {
  const q = (overrides: Parameters<typeof queue>[0] = {}) =>
    queue({ strategy: "PREFERRED_AGENT", preferredAgentTimeoutS: 600, autoParkSpacingS: 0, ...overrides });
  const billing = [{ skillId: "billing", minProficiency: null }];
  const experts = [
    agent("pref", { skills: [{ skillId: "billing", proficiency: 1 }], inboxLimit: 1 }),
    agent("expert", { skills: [{ skillId: "billing", proficiency: 5 }] }),
  ];

  it("gives the conversation to the eligible preferred agent over a better expert", () => {
    const d = planAssignments(
      snapshot({
        queue: q(),
        agents: experts,
        waiting: [conv("c", { requiredSkills: billing, preferredAgentId: "pref" })],
      }),
      NOW,
    ).decisions[0]!;
    expect(summary(d)).toBe("c:assign:pref");
    expect(d.rankedBy).toBe("PREFERRED_AGENT");
    expect(d.newPreferredAgentId).toBeUndefined();
    expect(d.candidates[0]!.detail?.preferred).toBe(true);
  });

  it("waits for an offline preferred agent until enqueuedAt + timeout, then falls back at exactly the timeout", () => {
    const agents = [{ ...experts[0]!, presence: "OFFLINE" as const }, experts[1]!];
    const enqueuedAt = minutesAgo(5);
    const c = conv("c", { requiredSkills: billing, preferredAgentId: "pref", enqueuedAt });
    const until = new Date(enqueuedAt.getTime() + 600_000);

    const waiting = planAssignments(
      snapshot({ queue: q(), agents, waiting: [c] }),
      new Date(until.getTime() - 1),
    );
    const w = waiting.decisions[0]!;
    expect(summary(w)).toBe("c:wait:pref");
    expect(w.waitUntil).toEqual(until);
    expect(w.note).toBe("PREFERRED_OFFLINE");
    expect(w.candidates).toEqual([{ agentId: "pref", eligible: false, score: null, reason: "PRESENCE" }]);

    const fallen = planAssignments(snapshot({ queue: q(), agents, waiting: [c] }), until).decisions[0]!;
    expect(summary(fallen)).toBe("c:assign:expert");
    expect(fallen.rankedBy).toBe("PROFICIENCY");
    expect(fallen.note).toBe("PREFERRED_TIMEOUT");
    expect(fallen.newPreferredAgentId).toBe("expert");
    expect(fallen.candidates.at(-1)).toEqual({
      agentId: "pref",
      eligible: false,
      score: null,
      reason: "PRESENCE",
    });
  });

  it("when the preferred agent fills up earlier in the batch: busy mode waits, offline mode falls back", () => {
    const waiting = [
      conv("first", { preferredAgentId: "pref", requiredSkills: billing, priority: 2 }),
      conv("second", { preferredAgentId: "pref", requiredSkills: billing, priority: 1 }),
    ];
    const busy = planAssignments(
      snapshot({ queue: q({ preferredAgentMode: "WAIT_WHILE_BUSY" }), agents: experts, waiting }),
      NOW,
    );
    expect(busy.decisions.map(summary)).toEqual(["first:assign:pref", "second:wait:pref"]);
    expect(busy.decisions[1]!.note).toBe("PREFERRED_BUSY");
    const offline = planAssignments(snapshot({ queue: q(), agents: experts, waiting }), NOW);
    expect(offline.decisions.map(summary)).toEqual(["first:assign:pref", "second:assign:expert"]);
    expect(offline.decisions[1]!.note).toBe("PREFERRED_INELIGIBLE");
    expect(offline.decisions[1]!.newPreferredAgentId).toBe("expert");
  });

  it("falls back at once when the preferred agent rejected this conversation", () => {
    const agents = [{ ...experts[0]!, presence: "OFFLINE" as const }, experts[1]!];
    const c = conv("c", { requiredSkills: billing, preferredAgentId: "pref", excludedAgentIds: ["pref"] });
    const d = planAssignments(
      snapshot({ queue: q({ preferredAgentMode: "WAIT_WHILE_BUSY" }), agents, waiting: [c] }),
      NOW,
    ).decisions[0]!;
    expect(summary(d)).toBe("c:assign:expert");
    expect(d.note).toBe("PREFERRED_INELIGIBLE");
  });

  it("sets the new preferred agent for a contact without one, and for offers too", () => {
    const d = planAssignments(
      snapshot({
        queue: q({ offerRequired: true }),
        agents: experts,
        waiting: [conv("c", { requiredSkills: billing })],
      }),
      NOW,
    ).decisions[0]!;
    expect(summary(d)).toBe("c:offer:expert");
    expect(d.note).toBe("NO_PREFERRED_AGENT");
    expect(d.newPreferredAgentId).toBe("expert");
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Presence, RoutingStrategy } from "../../src/engine/domain.js";
import { PRESENCES, ROUTING_STRATEGIES } from "../../src/engine/domain.js";
import { planAssignments, type RoutingDecision } from "../../src/engine/routing/assign.js";
import {
  agentLoad,
  effectiveInboxLimit,
  eligibleAgents,
  exclusionReasons,
} from "../../src/engine/routing/eligibility.js";
import { orderWaiting } from "../../src/engine/routing/queue-order.js";
import { preferredAgentChoice, rankAgents } from "../../src/engine/routing/strategies.js";
import { incrementDailyCount, tenantLocalDate } from "../../src/engine/routing/tenant-day.js";
import type {
  InboxLimit,
  RoutingAgent,
  RoutingSnapshot,
  WaitingConversation,
} from "../../src/engine/routing/types.js";
import { agent, conv, NOW, queue } from "./routing-fixtures.js";

/**
 * The planner against a naive reference built only from the per-conversation public
 * functions (eligibleAgents, rankAgents, preferredAgentChoice) re-run on agent records
 * updated after every decision — the way a one-by-one router would behave.
 */

const SKILLS = ["s1", "s2", "s3"] as const;

/** true with probability `p` (a multiple of 0.1). */
const likely = (p: number) => fc.integer({ min: 0, max: 9 }).map((n) => n < p * 10);
const TODAY = tenantLocalDate(NOW, "Europe/Berlin");

const limitArb: fc.Arbitrary<InboxLimit | null> = fc.oneof(
  fc.constant(null),
  fc.constant<InboxLimit>("OFF"),
  fc.integer({ min: 0, max: 4 }),
);

const agentArb = (id: string) =>
  fc
    .record({
      team: fc.constantFrom("team-1", "team-2", null),
      presence: fc.constantFrom<Presence>(...PRESENCES),
      loggedIn: likely(0.8),
      inboxLimit: limitArb,
      teamInboxLimit: limitArb,
      skills: fc.subarray([...SKILLS]),
      level: fc.integer({ min: 1, max: 5 }),
      active: fc.integer({ min: 0, max: 1 }),
      parked: fc.integer({ min: 0, max: 3 }),
      offered: fc.integer({ min: 0, max: 1 }),
      daily: fc.integer({ min: 0, max: 3 }),
      dailyDate: fc.constantFrom(TODAY, "2024-06-02", null),
      assignedAgo: fc.option(fc.integer({ min: 0, max: 3 })),
      deliveredAgo: fc.option(fc.constantFrom(0, 10, 29, 30, 31, 600)),
    })
    .map(
      (r): RoutingAgent =>
        agent(id, {
          teamId: r.team,
          presence: r.presence,
          loggedIn: r.loggedIn,
          inboxLimit: r.inboxLimit,
          teamInboxLimit: r.teamInboxLimit,
          skills: r.skills.map((skillId, i) => ({ skillId, proficiency: ((r.level + i) % 5) + 1 })),
          activeCount: r.active,
          parkedCount: r.parked,
          offeredCount: r.offered,
          dailyCount: r.daily,
          dailyCountDate: r.dailyDate,
          lastAssignedAt: r.assignedAgo === null ? null : new Date(NOW.getTime() - r.assignedAgo * 60_000),
          lastAutoDeliveredAt:
            r.deliveredAgo === null ? null : new Date(NOW.getTime() - r.deliveredAgo * 1000),
        }),
    );

const snapshotArb: fc.Arbitrary<RoutingSnapshot> = fc
  .integer({ min: 0, max: 10 })
  .chain((agentCount) => {
    const ids = Array.from({ length: agentCount }, (_, i) => `a${i}`);
    const convArb = (id: string) =>
      fc
        .record({
          priority: fc.integer({ min: 0, max: 3 }),
          enqueuedMinutesAgo: fc.integer({ min: 0, max: 30 }),
          sla: fc.option(fc.integer({ min: -10, max: 60 })),
          skills: fc.subarray([...SKILLS], { maxLength: 2 }),
          min: fc.option(fc.integer({ min: 1, max: 5 })),
          preferred: fc.option(fc.constantFrom(...ids, "ghost")),
          excluded: fc.subarray(ids, { maxLength: Math.min(2, ids.length) }),
        })
        .map(
          (r): WaitingConversation =>
            conv(id, {
              priority: r.priority,
              enqueuedAt: new Date(NOW.getTime() - r.enqueuedMinutesAgo * 60_000),
              slaDueAt: r.sla === null ? null : new Date(NOW.getTime() + r.sla * 60_000),
              requiredSkills: r.skills.map((skillId, i) => ({
                skillId,
                minProficiency: i === 0 ? r.min : null,
              })),
              preferredAgentId: r.preferred,
              excludedAgentIds: r.excluded,
            }),
        );
    return fc.record({
      agents: fc.tuple(...ids.map(agentArb)),
      waiting: fc
        .integer({ min: 0, max: 20 })
        .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => convArb(`c${i}`)))),
      strategy: fc.constantFrom<RoutingStrategy>(...ROUTING_STRATEGIES),
      order: fc.constantFrom("PRIORITY_SCORE" as const, "SLA_REMAINING" as const),
      memberTeamIds: fc.subarray(["team-1", "team-2"]),
      memberAgentIds: fc.subarray(ids),
      autoAssign: likely(0.9),
      routablePresences: fc.subarray([...PRESENCES], { minLength: 1 }),
      onlyLoggedIn: fc.boolean(),
      dailyLimit: fc.option(fc.integer({ min: 1, max: 4 })),
      businessHoursOnly: fc.boolean(),
      businessOpen: likely(0.8),
      offerRequired: fc.boolean(),
      autoParking: likely(0.8),
      autoParkSpacingS: fc.constantFrom(0, 30),
      preferredAgentMode: fc.constantFrom("WAIT_WHILE_OFFLINE" as const, "WAIT_WHILE_BUSY" as const),
      preferredAgentTimeoutS: fc.constantFrom(60, 600, 3600),
      defaultInboxLimit: fc.option(limitArb.filter((l) => l !== null)),
    });
  })
  .map((r) => {
    const snap: RoutingSnapshot = {
      timeZone: "Europe/Berlin",
      businessOpen: r.businessOpen,
      queue: queue({
        strategy: r.strategy,
        order: r.order,
        memberTeamIds: r.memberTeamIds,
        memberAgentIds: r.memberAgentIds,
        autoAssign: r.autoAssign,
        routablePresences: r.routablePresences,
        onlyLoggedIn: r.onlyLoggedIn,
        dailyLimit: r.dailyLimit,
        businessHoursOnly: r.businessHoursOnly,
        offerRequired: r.offerRequired,
        autoParking: r.autoParking,
        autoParkSpacingS: r.autoParkSpacingS,
        preferredAgentMode: r.preferredAgentMode,
        preferredAgentTimeoutS: r.preferredAgentTimeoutS,
      }),
      agents: r.agents,
      waiting: r.waiting,
    };
    if (r.defaultInboxLimit !== null) snap.defaultInboxLimit = r.defaultInboxLimit;
    return snap;
  });

/** An agent record after a decision is persisted (what the service's UPDATE does). */
function applied(a: RoutingAgent, kind: "assign" | "offer", today: string): RoutingAgent {
  const next: RoutingAgent = { ...a, lastAssignedAt: NOW, lastAutoDeliveredAt: NOW };
  if (kind === "offer") next.offeredCount++;
  else if (a.activeCount === 0) next.activeCount = 1;
  else next.parkedCount++;
  return { ...next, ...incrementDailyCount(a.dailyCount, a.dailyCountDate, today) };
}

type Outcome = Pick<RoutingDecision, "conversationId" | "kind" | "agentId">;

function referencePlan(snap: RoutingSnapshot): Outcome[] {
  const q = snap.queue;
  const today = tenantLocalDate(NOW, snap.timeZone);
  let agents = snap.agents;
  const out: Outcome[] = [];
  for (const c of orderWaiting(snap.waiting, NOW, q.order)) {
    let strategy = q.strategy;
    if (strategy === "PREFERRED_AGENT") {
      const pref = agents.find((a) => a.id === c.preferredAgentId);
      const reasons = pref === undefined ? [] : exclusionReasons(pref, c, q, NOW, snap);
      const choice = preferredAgentChoice(c, q, pref, reasons, NOW);
      if (choice.kind === "wait") {
        out.push({ conversationId: c.id, kind: "wait", agentId: choice.agentId });
        continue;
      }
      if (choice.kind === "fallback") strategy = "PROFICIENCY";
    }
    const { eligible } = eligibleAgents(c, q, agents, NOW, snap);
    const best = rankAgents(strategy, c, eligible, snap.defaultInboxLimit)[0];
    if (best === undefined) {
      out.push({ conversationId: c.id, kind: "none" });
      continue;
    }
    const kind = q.offerRequired ? "offer" : "assign";
    out.push({ conversationId: c.id, kind, agentId: best.agentId });
    agents = agents.map((a) => (a.id === best.agentId ? applied(a, kind, today) : a));
  }
  return out;
}

describe("planAssignments properties", () => {
  it("never exceeds a limit, never assigns twice, only to agents eligible at that moment", () => {
    fc.assert(
      fc.property(snapshotArb, (snap) => {
        const plan = planAssignments(snap, NOW);
        const q = snap.queue;
        expect(plan.decisions.length + plan.unplanned).toBe(snap.waiting.length);
        const seen = new Set<string>();
        const delivered = new Map<string, number>();
        let agents = snap.agents;
        for (const d of plan.decisions) {
          expect(seen.has(d.conversationId)).toBe(false);
          seen.add(d.conversationId);
          if (d.kind !== "wait") {
            // Every agent of the snapshot is accounted for exactly once in the explanation.
            const excludedTotal = Object.values(d.excluded).reduce((sum, n) => sum + n, 0);
            expect(d.eligibleCount + excludedTotal).toBe(new Set(snap.agents.map((a) => a.id)).size);
            expect(d.candidates.filter((c) => c.eligible)).toHaveLength(Math.min(d.eligibleCount, 5));
          }
          if (d.kind !== "assign" && d.kind !== "offer") continue;
          expect(d.kind).toBe(q.offerRequired ? "offer" : "assign");
          const c = snap.waiting.find((w) => w.id === d.conversationId)!;
          const { eligible } = eligibleAgents(c, q, agents, NOW, snap);
          expect(eligible.map((a) => a.id)).toContain(d.agentId);
          delivered.set(d.agentId!, (delivered.get(d.agentId!) ?? 0) + 1);
          agents = agents.map((a) =>
            a.id === d.agentId ? applied(a, d.kind as "assign" | "offer", plan.today) : a,
          );
        }
        for (const [id, count] of delivered) {
          const a = snap.agents.find((x) => x.id === id)!;
          const limit = effectiveInboxLimit(a.inboxLimit, a.teamInboxLimit, snap.defaultInboxLimit);
          expect(limit).not.toBe("OFF");
          expect(agentLoad(a) + count).toBeLessThanOrEqual(limit as number);
          if (q.autoParking && q.autoParkSpacingS > 0) expect(count).toBe(1);
          if (q.offerRequired) expect(a.offeredCount + count).toBe(1);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("makes the same decisions as routing the conversations one by one", () => {
    fc.assert(
      fc.property(snapshotArb, (snap) => {
        const plan = planAssignments(snap, NOW);
        const reference = referencePlan(snap);
        const planned: Outcome[] = plan.decisions.map(({ conversationId, kind, agentId }) =>
          agentId === undefined ? { conversationId, kind } : { conversationId, kind, agentId },
        );
        expect(planned).toEqual(reference.slice(0, planned.length));
        // What the planner skipped once nobody was open could not have been delivered either.
        for (const skipped of reference.slice(planned.length))
          expect(["none", "wait"]).toContain(skipped.kind);
      }),
      { numRuns: 200 },
    );
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BusinessCalendar, IsoWeekday } from "../../src/engine/domain.js";
import { businessMinutesBetween } from "../../src/engine/time/calendar.js";
import {
  applyStatusToSlaClock,
  type EffectiveSlaPolicy,
  pauseSlaClock,
  recordAgentReply,
  recordInbound,
  resolveSlaPolicy,
  resumeSlaClock,
  type SlaClockState,
  slaClockReading,
  slaDeadlines,
  slaMarks,
  slaState,
  startSlaClock,
  validateSlaPolicy,
} from "../../src/engine/time/sla.js";

const d = (iso: string) => new Date(iso);
const iso = (x: Date | null | undefined) => (x == null ? null : x.toISOString());

// Berlin, Mon–Fri 08:00–17:00 (CET = UTC+1 in January).
const berlin: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: ([1, 2, 3, 4, 5] as IsoWeekday[]).map((weekday) => ({ weekday, start: "08:00", end: "17:00" })),
  holidays: [{ date: "2026-01-06", name: "Heilige Drei Könige" }],
};

const policy: EffectiveSlaPolicy = {
  firstResponseMinutes: 60,
  nextResponseMinutes: 120,
  resolutionMinutes: 480,
  warningPercent: 75,
  source: "QUEUE",
};

// Monday 2026-01-05 09:00 CET.
const MON_0900 = d("2026-01-05T08:00:00Z");

describe("resolveSlaPolicy", () => {
  const tenant = { firstResponseMinutes: 240, resolutionMinutes: 2400 };
  const address = { firstResponseMinutes: 120, warningPercent: 50 };
  const queue = { nextResponseMinutes: 30 };
  it.each([
    [
      "queue beats address and tenant",
      { tenantDefault: tenant, address, queue },
      "QUEUE",
      null,
      30,
      null,
      80,
    ],
    ["address beats tenant", { tenantDefault: tenant, address, queue: null }, "ADDRESS", 120, null, null, 50],
    ["tenant default", { tenantDefault: tenant }, "TENANT", 240, null, 2400, 80],
    ["none at all", {}, "NONE", null, null, null, 80],
    [
      "an empty queue policy still overrides (no SLA here)",
      { tenantDefault: tenant, queue: {} },
      "QUEUE",
      null,
      null,
      null,
      80,
    ],
  ] as const)("%s", (_label, input, source, first, next, resolution, warning) => {
    expect(resolveSlaPolicy(input)).toEqual({
      firstResponseMinutes: first,
      nextResponseMinutes: next,
      resolutionMinutes: resolution,
      warningPercent: warning,
      source,
    });
  });
});

describe("validateSlaPolicy", () => {
  it.each([
    [
      {
        firstResponseMinutes: 60,
        nextResponseMinutes: null,
        resolutionMinutes: 1_440_000,
        warningPercent: 99,
      },
      [],
    ],
    [{}, []],
    [{ firstResponseMinutes: 0 }, ["firstResponseMinutes"]],
    [{ nextResponseMinutes: 1.5 }, ["nextResponseMinutes"]],
    [{ resolutionMinutes: 1_440_001 }, ["resolutionMinutes"]],
    [{ warningPercent: 0 }, ["warningPercent"]],
    [{ warningPercent: 100 }, ["warningPercent"]],
    [{ firstResponseMinutes: -5, warningPercent: 12.5 }, ["firstResponseMinutes", "warningPercent"]],
  ])("%j → %j", (input, fields) => {
    expect(validateSlaPolicy(input).map((p) => p.field)).toEqual(fields);
  });
});

describe("deadlines and warnings", () => {
  it("computes due and warning times in business hours", () => {
    const deadlines = slaDeadlines(startSlaClock(MON_0900), policy, berlin);
    expect(iso(deadlines.firstResponseDueAt)).toBe("2026-01-05T09:00:00.000Z"); // 10:00
    expect(iso(deadlines.firstResponseWarnAt)).toBe("2026-01-05T08:45:00.000Z"); // 75 % of 60
    expect(iso(deadlines.resolutionDueAt)).toBe("2026-01-05T16:00:00.000Z"); // 8 h: Monday 17:00
    expect(iso(deadlines.resolutionWarnAt)).toBe("2026-01-05T14:00:00.000Z"); // 360 min
    expect(deadlines.nextResponseDueAt).toBeNull();
  });

  it("a conversation arriving on Saturday is due Monday", () => {
    const deadlines = slaDeadlines(startSlaClock(d("2026-01-10T10:00:00Z")), policy, berlin);
    expect(iso(deadlines.firstResponseDueAt)).toBe("2026-01-12T08:00:00.000Z");
  });

  it.each([
    ["09:30: running, not warned", "2026-01-05T08:30:00Z", 30, false, false],
    ["09:44: just before the warning", "2026-01-05T08:44:00Z", 16, false, false],
    ["09:45: warned at 75 %", "2026-01-05T08:45:00Z", 15, true, false],
    ["10:00: breached at the due instant", "2026-01-05T09:00:00Z", 0, true, true],
    ["12:00: overdue by 120", "2026-01-05T11:00:00Z", -120, true, true],
    ["Monday 20:00: no business time passes after hours", "2026-01-05T19:00:00Z", -420, true, true],
  ])("first response at %s", (_label, now, remaining, warned, breached) => {
    const s = slaState(startSlaClock(MON_0900), policy, berlin, d(now)).firstResponse;
    expect(s).toMatchObject({ phase: "RUNNING", remainingBusinessMinutes: remaining, warned, breached });
    expect(iso(s?.dueAt)).toBe("2026-01-05T09:00:00.000Z");
  });

  it.each([
    [50, "2026-01-05T08:30:00.000Z"],
    [1, "2026-01-05T08:00:36.000Z"],
    [99, "2026-01-05T08:59:24.000Z"],
  ])("warningPercent %d warns at %s", (warningPercent, expected) => {
    const deadlines = slaDeadlines(startSlaClock(MON_0900), { ...policy, warningPercent }, berlin);
    expect(iso(deadlines.firstResponseWarnAt)).toBe(expected);
  });

  it.each([
    ["reply at the due instant meets the target", "2026-01-05T09:00:00Z", "MET", false],
    ["reply one minute late misses it", "2026-01-05T09:01:00Z", "MISSED", true],
    ["reply after 10 min", "2026-01-05T08:10:00Z", "MET", false],
  ])("%s", (_label, replyAt, phase, breached) => {
    const state = recordAgentReply(startSlaClock(MON_0900), berlin, d(replyAt));
    const s = slaState(state, policy, berlin, d("2026-01-05T12:00:00Z")).firstResponse;
    expect(s).toMatchObject({ phase, breached, dueAt: null });
    expect(slaDeadlines(state, policy, berlin).firstResponseDueAt).toBeNull();
  });

  it("targets without a configured minute count are absent", () => {
    const none = resolveSlaPolicy({});
    expect(slaState(startSlaClock(MON_0900), none, berlin, MON_0900)).toEqual({
      firstResponse: null,
      nextResponse: null,
      resolution: null,
    });
  });
});

describe("pause and resume", () => {
  it("time while PAUSED is not consumed and deadlines move by the pause", () => {
    // Run 30 min (to 09:30), pause until Wednesday 09:00 (Tuesday is a holiday anyway).
    let state = startSlaClock(MON_0900);
    state = applyStatusToSlaClock(state, berlin, "PAUSED", d("2026-01-05T08:30:00Z"));
    expect(state).toMatchObject({ runningSince: null, pauseReason: "PAUSED", consumedBusinessMinutes: 30 });
    const paused = slaState(state, policy, berlin, d("2026-01-07T07:00:00Z")).firstResponse;
    expect(paused).toMatchObject({
      phase: "PAUSED",
      remainingBusinessMinutes: 30,
      breached: false,
      dueAt: null,
    });
    expect(slaDeadlines(state, policy, berlin).firstResponseDueAt).toBeNull();

    state = applyStatusToSlaClock(state, berlin, "ACTIVE", d("2026-01-07T08:00:00Z"));
    expect(slaClockReading(state, berlin, d("2026-01-07T08:00:00Z"))).toBe(30);
    const deadlines = slaDeadlines(state, policy, berlin);
    expect(iso(deadlines.firstResponseDueAt)).toBe("2026-01-07T08:30:00.000Z");
    expect(iso(deadlines.firstResponseWarnAt)).toBe("2026-01-07T08:15:00.000Z");
    // 480 − 30 = 450 min from Wednesday 09:00: 16:30 the same day.
    expect(iso(deadlines.resolutionDueAt)).toBe("2026-01-07T15:30:00.000Z");
  });

  it("pausing twice keeps the first pause; resuming a running clock changes nothing", () => {
    const running = startSlaClock(MON_0900);
    expect(resumeSlaClock(running, d("2026-01-05T09:00:00Z"))).toBe(running);
    const paused = pauseSlaClock(running, berlin, d("2026-01-05T08:20:00Z"), "PAUSED");
    const again = pauseSlaClock(paused, berlin, d("2026-01-05T10:00:00Z"), "PAUSED");
    expect(again).toBe(paused);
    const resolved = pauseSlaClock(paused, berlin, d("2026-01-05T10:00:00Z"), "RESOLVED");
    expect(resolved).toMatchObject({ pausedAt: d("2026-01-05T08:20:00Z"), pauseReason: "RESOLVED" });
    expect(resolved.consumedBusinessMinutes).toBe(20);
  });

  it("resolving meets the resolution target; reactivating resumes it", () => {
    let state = applyStatusToSlaClock(startSlaClock(MON_0900), berlin, "RESOLVED", d("2026-01-05T13:00:00Z"));
    let s = slaState(state, policy, berlin, d("2026-01-09T12:00:00Z"));
    expect(s.resolution).toMatchObject({ phase: "MET", elapsedBusinessMinutes: 300, breached: false });
    expect(slaDeadlines(state, policy, berlin).resolutionDueAt).toBeNull();

    state = applyStatusToSlaClock(state, berlin, "ACTIVE", d("2026-01-08T08:00:00Z"));
    s = slaState(state, policy, berlin, d("2026-01-08T09:00:00Z"));
    expect(s.resolution).toMatchObject({ phase: "RUNNING", remainingBusinessMinutes: 120 });
    expect(iso(s.resolution?.dueAt)).toBe("2026-01-08T11:00:00.000Z");
  });

  it("CLOSED stops the clock like RESOLVED; resolving late is MISSED", () => {
    const state = applyStatusToSlaClock(startSlaClock(MON_0900), berlin, "CLOSED", d("2026-01-07T12:00:00Z"));
    expect(slaState(state, policy, berlin, d("2026-02-01T00:00:00Z")).resolution).toMatchObject({
      phase: "MISSED",
      breached: true,
      elapsedBusinessMinutes: 8 * 60 + 5 * 60, // Monday, (holiday), Wednesday 08:00–13:00
    });
  });

  it("a target breached before a pause stays breached, without a due time, after resuming", () => {
    let state = startSlaClock(MON_0900);
    state = pauseSlaClock(state, berlin, d("2026-01-05T11:00:00Z"), "PAUSED"); // clock 180
    state = resumeSlaClock(state, d("2026-01-07T08:00:00Z"));
    const s = slaState(state, policy, berlin, d("2026-01-07T08:30:00Z")).firstResponse;
    expect(s).toMatchObject({
      phase: "RUNNING",
      breached: true,
      remainingBusinessMinutes: -150,
      dueAt: null,
    });
  });
});

describe("next response", () => {
  it("starts with the first unanswered customer message after the first reply", () => {
    let state = startSlaClock(MON_0900);
    state = recordInbound(state, berlin, d("2026-01-05T08:10:00Z")); // before the first reply: covered already
    expect(state.awaitingReplySince).toBeNull();
    state = recordAgentReply(state, berlin, d("2026-01-05T08:30:00Z"));
    expect(state).toMatchObject({ firstResponseClock: 30, awaitingReplySince: null });
    state = recordInbound(state, berlin, d("2026-01-05T10:00:00Z")); // 11:00, clock 120
    state = recordInbound(state, berlin, d("2026-01-05T11:00:00Z")); // a second message does not push it back
    expect(state).toMatchObject({ awaitingReplySince: d("2026-01-05T10:00:00Z"), awaitingReplyClock: 120 });
    const s = slaState(state, policy, berlin, d("2026-01-05T11:30:00Z")).nextResponse;
    expect(s).toMatchObject({ phase: "RUNNING", elapsedBusinessMinutes: 90, warned: true, breached: false });
    expect(iso(s?.dueAt)).toBe("2026-01-05T12:00:00.000Z");
    expect(iso(s?.warnAt)).toBe("2026-01-05T11:30:00.000Z");

    state = recordAgentReply(state, berlin, d("2026-01-05T11:45:00Z"));
    expect(state.awaitingReplySince).toBeNull();
    expect(slaState(state, policy, berlin, d("2026-01-05T12:30:00Z")).nextResponse).toBeNull();
    // The first reply stays as it was.
    expect(state.firstResponseAt).toEqual(d("2026-01-05T08:30:00Z"));
  });

  it("breaches when unanswered past the target, counting business time only", () => {
    let state = recordAgentReply(startSlaClock(MON_0900), berlin, d("2026-01-05T08:05:00Z"));
    state = recordInbound(state, berlin, d("2026-01-05T15:30:00Z")); // 16:30, 30 min before closing
    const due = slaDeadlines(state, policy, berlin).nextResponseDueAt;
    expect(iso(due)).toBe("2026-01-07T08:30:00.000Z"); // 30 min Mon + Tue holiday + 90 min Wed
    const s = slaState(state, policy, berlin, d("2026-01-07T08:30:00Z")).nextResponse;
    expect(s).toMatchObject({ breached: true, remainingBusinessMinutes: 0 });
  });
});

describe("properties", () => {
  const start = fc
    .integer({ min: Date.UTC(2026, 0, 1) / 60_000, max: Date.UTC(2026, 11, 1) / 60_000 })
    .map((m) => new Date(m * 60_000));
  const gaps = fc.array(fc.integer({ min: 1, max: 5 * 24 * 60 }), { minLength: 1, maxLength: 8 });

  it("the clock reading is the business time of the running periods only", () => {
    fc.assert(
      fc.property(start, gaps, (t0, steps) => {
        let state: SlaClockState = startSlaClock(t0);
        let t = t0.getTime();
        let expected = 0;
        let running = true;
        for (const step of steps) {
          const next = new Date(t + step * 60_000);
          if (running) {
            expected += businessMinutesBetween(berlin, new Date(t), next);
            state = applyStatusToSlaClock(state, berlin, "PAUSED", next);
          } else state = applyStatusToSlaClock(state, berlin, "ACTIVE", next);
          running = !running;
          t = next.getTime();
        }
        expect(slaClockReading(state, berlin, new Date(t))).toBeCloseTo(expected, 9);
      }),
      { numRuns: 200 },
    );
  });

  it("while running, breached and warned flip exactly at dueAt and warnAt", () => {
    fc.assert(
      fc.property(start, gaps, fc.integer({ min: 0, max: 10 * 24 * 60 }), (t0, steps, probe) => {
        let state: SlaClockState = startSlaClock(t0);
        let t = t0.getTime();
        // Alternate pauses so the current running period starts somewhere in the week.
        for (const [i, step] of steps.entries()) {
          t += step * 60_000;
          state = applyStatusToSlaClock(state, berlin, i % 2 === 0 ? "PAUSED" : "ACTIVE", new Date(t));
        }
        state = resumeSlaClock(state, new Date(t));
        const now = new Date(t + probe * 60_000);
        const s = slaState(state, policy, berlin, now).resolution;
        expect(s).not.toBeNull();
        if (s === null) return;
        if (s.dueAt !== null) expect(s.breached).toBe(now.getTime() >= s.dueAt.getTime());
        else expect(s.breached).toBe(true);
        if (s.warnAt !== null) expect(s.warned).toBe(now.getTime() >= s.warnAt.getTime());
      }),
      { numRuns: 200 },
    );
  });
});

describe("queue marks (slaMarks)", () => {
  const start = fc
    .integer({ min: Date.UTC(2026, 0, 1) / 60_000, max: Date.UTC(2026, 11, 1) / 60_000 })
    .map((m) => new Date(m * 60_000));
  const op = fc.constantFrom("PAUSED", "ACTIVE", "RESOLVED", "REPLY", "INBOUND");
  const steps = fc.array(fc.tuple(op, fc.integer({ min: 1, max: 3 * 24 * 60 })), { maxLength: 10 });

  /** What the per-conversation reading says: breached, else at risk (a pending target warned). */
  function standing(state: SlaClockState, now: Date) {
    const s = slaState(state, policy, berlin, now);
    const all = [s.firstResponse, s.nextResponse, s.resolution];
    const breached = all.some((x) => x?.breached);
    const atRisk =
      !breached && all.some((x) => x && (x.phase === "RUNNING" || x.phase === "PAUSED") && x.warned);
    return { breached, atRisk };
  }

  function fromMarks(state: SlaClockState, now: Date) {
    const m = slaMarks(state, policy, berlin);
    const breached = m.breachedFrom !== null && m.breachedFrom <= now;
    const atRisk = !breached && m.atRiskFrom !== null && m.atRiskFrom <= now;
    return { breached, atRisk };
  }

  it("agree with slaState at any later instant, across pauses, replies and resolution", () => {
    fc.assert(
      fc.property(start, steps, fc.integer({ min: 0, max: 10 * 24 * 60 }), (t0, ops, probe) => {
        let state: SlaClockState = startSlaClock(t0);
        let t = t0.getTime();
        for (const [kind, gap] of ops) {
          t += gap * 60_000;
          const at = new Date(t);
          if (kind === "REPLY") state = recordAgentReply(state, berlin, at);
          else if (kind === "INBOUND") state = recordInbound(resumeSlaClock(state, at), berlin, at);
          else state = applyStatusToSlaClock(state, berlin, kind, at);
        }
        // Half a minute off the grid: readings are whole minutes, so no probe sits on an edge.
        const now = new Date(t + probe * 60_000 + 30_000);
        expect(fromMarks(state, now)).toEqual(standing(state, now));
      }),
      { numRuns: 500 },
    );
  });

  it("running: at risk from the warning instant, breached from the due instant", () => {
    const state = startSlaClock(MON_0900);
    const m = slaMarks(state, policy, berlin);
    // 75 % of 60 business minutes = 45: 09:45 CET; due 10:00 CET.
    expect(iso(m.atRiskFrom)).toBe("2026-01-05T08:45:00.000Z");
    expect(iso(m.breachedFrom)).toBe("2026-01-05T09:00:00.000Z");
    expect(fromMarks(state, d("2026-01-05T08:44:59Z"))).toEqual({ breached: false, atRisk: false });
    expect(fromMarks(state, d("2026-01-05T08:45:00Z"))).toEqual({ breached: false, atRisk: true });
    expect(fromMarks(state, d("2026-01-05T09:00:00Z"))).toEqual({ breached: true, atRisk: false });
  });

  it("paused: a deadline passing while paused is no breach; what was reached stays", () => {
    const early = pauseSlaClock(startSlaClock(MON_0900), berlin, d("2026-01-05T08:30:00Z"), "PAUSED");
    expect(slaMarks(early, policy, berlin)).toEqual({ atRiskFrom: null, breachedFrom: null });
    const warned = pauseSlaClock(startSlaClock(MON_0900), berlin, d("2026-01-05T08:50:00Z"), "PAUSED");
    expect(slaMarks(warned, policy, berlin)).toEqual({
      atRiskFrom: d("2026-01-05T08:50:00Z"),
      breachedFrom: null,
    });
    const overdue = pauseSlaClock(startSlaClock(MON_0900), berlin, d("2026-01-05T09:10:00Z"), "PAUSED");
    expect(iso(slaMarks(overdue, policy, berlin).breachedFrom)).toBe("2026-01-05T09:10:00.000Z");
  });

  it("a late first reply (MISSED) stays breached; a timely one leaves the other targets", () => {
    const late = recordAgentReply(startSlaClock(MON_0900), berlin, d("2026-01-05T09:30:00Z"));
    expect(iso(slaMarks(late, policy, berlin).breachedFrom)).toBe(MON_0900.toISOString());
    const onTime = recordAgentReply(startSlaClock(MON_0900), berlin, d("2026-01-05T08:10:00Z"));
    // Resolution: 480 business minutes → warning at 360 (15:00 CET), due 17:00 CET.
    expect(slaMarks(onTime, policy, berlin)).toEqual({
      atRiskFrom: d("2026-01-05T14:00:00Z"),
      breachedFrom: d("2026-01-05T16:00:00Z"),
    });
  });
});

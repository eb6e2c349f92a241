import { describe, expect, it } from "vitest";
import { CONVERSATION_STATUSES, type ConversationStatus } from "../../src/engine/domain.js";
import {
  allowedTransitions,
  canTransition,
  DEFAULT_REOPEN,
  DEFAULT_STATUS_TIMERS,
  nextTimer,
  onInboundMail,
  statusAfterInbound,
  type TransitionActor,
  transitionError,
  validateStatusTimers,
} from "../../src/engine/time/lifecycle.js";

const DAY = 86_400_000;
const d = (iso: string) => new Date(iso);

// The intended table, written out independently of the implementation's.
const AGENT_LEGAL = new Set([
  "NEW>ACTIVE",
  "NEW>RESOLVED",
  "NEW>CLOSED",
  "ACTIVE>PAUSED",
  "ACTIVE>RESOLVED",
  "ACTIVE>CLOSED",
  "PAUSED>ACTIVE",
  "PAUSED>RESOLVED",
  "PAUSED>CLOSED",
  "RESOLVED>ACTIVE",
  "RESOLVED>CLOSED",
  "REOPENED>ACTIVE",
  "REOPENED>PAUSED",
  "REOPENED>RESOLVED",
  "REOPENED>CLOSED",
]);
const SUPERVISOR_LEGAL = new Set([...AGENT_LEGAL, "CLOSED>REOPENED"]);
const SYSTEM_LEGAL = new Set([
  "ACTIVE>PAUSED",
  "REOPENED>PAUSED",
  "PAUSED>CLOSED",
  "RESOLVED>CLOSED",
  "PAUSED>ACTIVE",
  "RESOLVED>ACTIVE",
  "CLOSED>REOPENED",
]);
const LEGAL: Record<TransitionActor, Set<string>> = {
  AGENT: AGENT_LEGAL,
  SUPERVISOR: SUPERVISOR_LEGAL,
  ADMIN: SUPERVISOR_LEGAL,
  SYSTEM: SYSTEM_LEGAL,
};

const cases = (Object.keys(LEGAL) as TransitionActor[]).flatMap((actor) =>
  CONVERSATION_STATUSES.flatMap((from) =>
    CONVERSATION_STATUSES.map((to) => [actor, from, to, LEGAL[actor].has(`${from}>${to}`)] as const),
  ),
);

describe("canTransition", () => {
  it.each(cases)("%s: %s → %s is %s", (actor, from, to, legal) => {
    expect(canTransition(from, to, actor)).toBe(legal);
    expect(transitionError(from, to, actor) === null).toBe(legal);
  });

  it("explains refusals", () => {
    expect(transitionError("CLOSED", "REOPENED", "AGENT")).toBe(
      "Only a supervisor can change a CLOSED conversation to REOPENED",
    );
    expect(transitionError("ACTIVE", "ACTIVE", "AGENT")).toBe("The conversation is already ACTIVE");
    expect(transitionError("RESOLVED", "PAUSED", "SUPERVISOR")).toBe(
      "A RESOLVED conversation cannot be changed to PAUSED",
    );
  });

  it.each([
    ["NEW", "AGENT", ["ACTIVE", "RESOLVED", "CLOSED"]],
    ["CLOSED", "AGENT", []],
    ["CLOSED", "SUPERVISOR", ["REOPENED"]],
    ["PAUSED", "SYSTEM", ["CLOSED", "ACTIVE"]],
  ] as const)("allowedTransitions(%s, %s)", (from, actor, expected) => {
    expect(allowedTransitions(from, actor)).toEqual(expected);
  });
});

describe("nextTimer", () => {
  const base = { lastActivityAt: d("2026-01-10T12:00:00Z"), statusChangedAt: d("2026-01-05T12:00:00Z") };
  it.each([
    [
      "ACTIVE idles to PAUSED 30 days after last activity",
      "ACTIVE",
      "ACTIVE_TO_PAUSED",
      "PAUSED",
      "2026-02-09T12:00:00.000Z",
    ],
    ["REOPENED idles like ACTIVE", "REOPENED", "ACTIVE_TO_PAUSED", "PAUSED", "2026-02-09T12:00:00.000Z"],
    [
      "PAUSED closes 60 days after pausing",
      "PAUSED",
      "PAUSED_TO_CLOSED",
      "CLOSED",
      "2026-03-06T12:00:00.000Z",
    ],
    [
      "RESOLVED closes 30 days after resolving",
      "RESOLVED",
      "RESOLVED_TO_CLOSED",
      "CLOSED",
      "2026-02-04T12:00:00.000Z",
    ],
  ] as const)("%s", (_label, status, kind, to, dueAt) => {
    const timer = nextTimer({ ...base, status }, DEFAULT_STATUS_TIMERS);
    expect(timer).toEqual({ kind, to, dueAt: d(dueAt) });
  });

  it.each(["NEW", "CLOSED"] as const)("%s has no timer", (status) => {
    expect(nextTimer({ ...base, status }, DEFAULT_STATUS_TIMERS)).toBeNull();
  });

  it.each([
    ["ACTIVE", { ...DEFAULT_STATUS_TIMERS, activeToPausedDays: null }],
    ["REOPENED", { ...DEFAULT_STATUS_TIMERS, activeToPausedDays: null }],
    ["PAUSED", { ...DEFAULT_STATUS_TIMERS, pausedToClosedDays: null }],
    ["RESOLVED", { ...DEFAULT_STATUS_TIMERS, resolvedToClosedDays: null }],
  ] as const)("switching the %s timer off disables only it", (status, settings) => {
    expect(nextTimer({ ...base, status }, settings)).toBeNull();
    expect(nextTimer({ ...base, status }, DEFAULT_STATUS_TIMERS)).not.toBeNull();
  });

  it("uses the configured days and the later of activity and status change for idling", () => {
    const settings = { activeToPausedDays: 1, pausedToClosedDays: 1000, resolvedToClosedDays: 7 };
    const reactivated = {
      status: "ACTIVE",
      lastActivityAt: d("2025-01-01T00:00:00Z"),
      statusChangedAt: d("2026-01-05T00:00:00Z"),
    } as const;
    expect(nextTimer(reactivated, settings)?.dueAt).toEqual(d("2026-01-06T00:00:00Z"));
    const paused = { ...base, status: "PAUSED" } as const;
    expect(nextTimer(paused, settings)?.dueAt.getTime()).toBe(base.statusChangedAt.getTime() + 1000 * DAY);
    const resolved = { ...base, status: "RESOLVED" } as const;
    expect(nextTimer(resolved, settings)?.dueAt.getTime()).toBe(base.statusChangedAt.getTime() + 7 * DAY);
  });

  it("every timer's move is a legal system transition", () => {
    for (const status of CONVERSATION_STATUSES) {
      const timer = nextTimer({ ...base, status }, DEFAULT_STATUS_TIMERS);
      if (timer !== null) expect(canTransition(status, timer.to, "SYSTEM")).toBe(true);
    }
  });
});

describe("validateStatusTimers", () => {
  it.each([
    [{ activeToPausedDays: 1, pausedToClosedDays: 1000, resolvedToClosedDays: null }, []],
    [{ reopenWindowDays: 30, reopenEnabled: false }, []],
    [{}, []],
    [{ activeToPausedDays: 0 }, ["activeToPausedDays"]],
    [{ pausedToClosedDays: 1001 }, ["pausedToClosedDays"]],
    [{ resolvedToClosedDays: 2.5 }, ["resolvedToClosedDays"]],
    [
      { activeToPausedDays: -1, resolvedToClosedDays: 0, reopenWindowDays: 0 },
      ["activeToPausedDays", "resolvedToClosedDays", "reopenWindowDays"],
    ],
    [{ reopenWindowDays: 1001 }, ["reopenWindowDays"]],
  ])("%j → %j", (input, fields) => {
    expect(validateStatusTimers(input).map((p) => p.field)).toEqual(fields);
  });

  it("rejects a null reopen window (only timers can be switched off)", () => {
    const input = { reopenWindowDays: null } as unknown as { reopenWindowDays: number };
    expect(validateStatusTimers(input).map((p) => p.field)).toEqual(["reopenWindowDays"]);
  });
});

describe("onInboundMail", () => {
  const closedAt = d("2026-01-01T00:00:00Z");
  const at = (ms: number) => new Date(closedAt.getTime() + ms);
  it.each([
    ["NEW", "SAME"],
    ["ACTIVE", "SAME"],
    ["REOPENED", "SAME"],
    ["PAUSED", "REACTIVATE"],
    ["RESOLVED", "REACTIVATE"],
  ] as const)("%s → %s", (status, effect) => {
    expect(onInboundMail(status, null, d("2026-06-01T00:00:00Z"), DEFAULT_REOPEN)).toBe(effect);
  });

  it.each([
    ["one minute after closing", 60_000, DEFAULT_REOPEN, "REOPEN"],
    ["exactly 30 days after (inclusive)", 30 * DAY, DEFAULT_REOPEN, "REOPEN"],
    ["30 days and 1 ms after", 30 * DAY + 1, DEFAULT_REOPEN, "NEW_LINKED"],
    ["a year after", 365 * DAY, DEFAULT_REOPEN, "NEW_LINKED"],
    ["reopening switched off", 60_000, { reopenEnabled: false, reopenWindowDays: 30 }, "NEW_LINKED"],
    ["a 1-day window, at 1 day", DAY, { reopenEnabled: true, reopenWindowDays: 1 }, "REOPEN"],
    ["a 1-day window, after it", DAY + 1, { reopenEnabled: true, reopenWindowDays: 1 }, "NEW_LINKED"],
    ["clock skew: mail stamped before the closing", -60_000, DEFAULT_REOPEN, "REOPEN"],
  ] as const)("CLOSED, %s → %s", (_label, offset, settings, effect) => {
    expect(onInboundMail("CLOSED", closedAt, at(offset), settings)).toBe(effect);
  });

  it("a CLOSED conversation without a closing time starts a new one", () => {
    expect(onInboundMail("CLOSED", null, closedAt, DEFAULT_REOPEN)).toBe("NEW_LINKED");
  });

  it.each([
    ["PAUSED", "REACTIVATE", "ACTIVE"],
    ["RESOLVED", "REACTIVATE", "ACTIVE"],
    ["CLOSED", "REOPEN", "REOPENED"],
    ["ACTIVE", "SAME", "ACTIVE"],
    ["CLOSED", "NEW_LINKED", null],
  ] as const)("statusAfterInbound(%s, %s) = %s, a legal system move", (status, effect, expected) => {
    const after = statusAfterInbound(status, effect);
    expect(after).toBe(expected);
    if (after !== null && after !== status)
      expect(canTransition(status, after as ConversationStatus, "SYSTEM")).toBe(true);
  });
});

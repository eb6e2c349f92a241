import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PresentNextPolicy } from "../../src/engine/routing/types.js";
import {
  activate,
  handleTimeAt,
  interrupt,
  type OwnedConversation,
  park,
  presentNext,
  receive,
  release,
  resume,
  type WorkingSet,
  type WorkingSetEvent,
  type WorkingSetResult,
} from "../../src/engine/routing/working-set.js";

const T0 = new Date("2024-06-03T09:00:00.000Z");
const t = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const empty: WorkingSet = { agentId: "agent", conversations: [], interruption: null };

function ok(result: WorkingSetResult): { state: WorkingSet; events: WorkingSetEvent[] } {
  if (!result.ok) throw new Error(`unexpected ${result.error}`);
  return result;
}

const item = (id: string, priority = 0, slaDueAt: Date | null = null) => ({ id, priority, slaDueAt });
const find = (ws: WorkingSet, id: string) => ws.conversations.find((c) => c.id === id)!;
const states = (ws: WorkingSet) => Object.fromEntries(ws.conversations.map((c) => [c.id, c.state]));

type Op =
  | ["receive", string, number]
  | ["activate", string, number]
  | ["park", string, number]
  | ["interrupt", number]
  | ["resume", number]
  | ["release", string, number];

function run(ops: Op[]): { state: WorkingSet; released: Record<string, number>; events: WorkingSetEvent[] } {
  let state = empty;
  const released: Record<string, number> = {};
  const events: WorkingSetEvent[] = [];
  for (const op of ops) {
    let r: WorkingSetResult;
    if (op[0] === "receive") r = receive(state, item(op[1]), t(op[2]));
    else if (op[0] === "activate") r = activate(state, op[1], t(op[2]));
    else if (op[0] === "park") r = park(state, op[1], t(op[2]));
    else if (op[0] === "interrupt") r = interrupt(state, t(op[1]), "voice");
    else if (op[0] === "resume") r = resume(state, t(op[1]));
    else r = release(state, op[1], t(op[2]));
    const done = ok(r);
    state = done.state;
    events.push(...done.events);
    for (const e of done.events)
      if (e.type === "RELEASED") released[e.conversationId] = e.payload.handleTimeMs;
  }
  return { state, released, events };
}

describe("working set: handle time accrues only while ACTIVE", () => {
  it.each<{ name: string; ops: Op[]; at: number; expected: Record<string, number> }>([
    { name: "running session counts", ops: [["receive", "a", 0]], at: 90, expected: { a: 90_000 } },
    {
      name: "delivered parked: nothing accrues",
      ops: [
        ["receive", "a", 0],
        ["receive", "b", 10],
      ],
      at: 60,
      expected: { a: 60_000, b: 0 },
    },
    {
      name: "park stores the session, time parked does not count",
      ops: [
        ["receive", "a", 0],
        ["park", "a", 60],
      ],
      at: 600,
      expected: { a: 60_000 },
    },
    {
      name: "activate restarts the clock",
      ops: [
        ["receive", "a", 0],
        ["park", "a", 60],
        ["activate", "a", 100],
      ],
      at: 130,
      expected: { a: 90_000 },
    },
    {
      name: "switching parks the active one",
      ops: [
        ["receive", "a", 0],
        ["receive", "b", 5],
        ["activate", "b", 40],
        ["activate", "a", 100],
      ],
      at: 110,
      expected: { a: 50_000, b: 60_000 },
    },
    {
      name: "an interruption stops the clock until resume",
      ops: [
        ["receive", "a", 0],
        ["interrupt", 30],
        ["resume", 330],
      ],
      at: 360,
      expected: { a: 60_000 },
    },
    {
      name: "re-activating the active one changes nothing",
      ops: [
        ["receive", "a", 0],
        ["activate", "a", 50],
      ],
      at: 100,
      expected: { a: 100_000 },
    },
  ])("$name", ({ ops, at, expected }) => {
    const { state } = run(ops);
    expect(Object.fromEntries(state.conversations.map((c) => [c.id, handleTimeAt(c, t(at))]))).toEqual(
      expected,
    );
  });

  it("release reports the final handle time including the running session", () => {
    const { state, released } = run([
      ["receive", "a", 0],
      ["park", "a", 20],
      ["activate", "a", 50],
      ["release", "a", 80],
    ]);
    expect(released).toEqual({ a: 50_000 });
    expect(state.conversations).toEqual([]);
  });

  it("a clock behind the session start adds nothing instead of subtracting", () => {
    const { state } = run([["receive", "a", 100]]);
    const parked = ok(park(state, "a", t(40))).state;
    expect(find(parked, "a").handleTimeMs).toBe(0);
  });

  it("property: at most one ACTIVE, and handle time adds up to the time something was active", () => {
    const opArb = fc.oneof(
      fc.tuple(fc.constant("receive" as const), fc.constantFrom("a", "b", "c", "d")),
      fc.tuple(fc.constant("activate" as const), fc.constantFrom("a", "b", "c", "d")),
      fc.tuple(fc.constant("park" as const), fc.constantFrom("a", "b", "c", "d")),
      fc.tuple(fc.constant("release" as const), fc.constantFrom("a", "b", "c", "d")),
      fc.tuple(fc.constant("interrupt" as const), fc.constant("")),
      fc.tuple(fc.constant("resume" as const), fc.constant("")),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(opArb, fc.integer({ min: 0, max: 120 })), { maxLength: 40 }), (steps) => {
        let state = empty;
        let clock = 0;
        let activeMs = 0;
        let releasedMs = 0;
        for (const [[op, id], gap] of steps) {
          if (state.conversations.some((c) => c.state === "ACTIVE")) activeMs += gap * 1000;
          clock += gap;
          const now = t(clock);
          const r =
            op === "receive"
              ? receive(state, item(id), now)
              : op === "activate"
                ? activate(state, id, now)
                : op === "park"
                  ? park(state, id, now)
                  : op === "release"
                    ? release(state, id, now)
                    : op === "interrupt"
                      ? interrupt(state, now)
                      : resume(state, now);
          if (!r.ok) continue;
          for (const e of r.events) if (e.type === "RELEASED") releasedMs += e.payload.handleTimeMs;
          state = r.state;
          expect(state.conversations.filter((c) => c.state === "ACTIVE").length).toBeLessThanOrEqual(1);
          if (state.interruption !== null)
            expect(state.conversations.every((c) => c.state === "PARKED")).toBe(true);
        }
        const held = state.conversations.reduce((sum, c) => sum + handleTimeAt(c, t(clock)), 0);
        expect(held + releasedMs).toBe(activeMs);
      }),
      { numRuns: 300 },
    );
  });
});

describe("working set: operations and events", () => {
  it("delivers ACTIVE into an idle inbox and PARKED behind an active one", () => {
    const first = ok(receive(empty, item("a"), t(0)));
    expect(first.events).toEqual([
      { type: "ACTIVATED", conversationId: "a", payload: { reason: "DELIVERED" } },
    ]);
    const second = ok(receive(first.state, item("b"), t(5)));
    expect(states(second.state)).toEqual({ a: "ACTIVE", b: "PARKED" });
    expect(second.events).toEqual([
      {
        type: "PARKED",
        conversationId: "b",
        payload: { reason: "DELIVERED", sessionMs: 0, handleTimeMs: 0 },
      },
    ]);
    expect(receive(second.state, item("a"), t(6))).toEqual({ ok: false, error: "ALREADY_OWNED" });
  });

  it("activate parks the active one first and writes both events in order", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["receive", "b", 0],
    ]);
    const r = ok(activate(state, "b", t(30)));
    expect(states(r.state)).toEqual({ a: "PARKED", b: "ACTIVE" });
    expect(r.events).toEqual([
      {
        type: "PARKED",
        conversationId: "a",
        payload: { reason: "SWITCH", sessionMs: 30_000, handleTimeMs: 30_000 },
      },
      { type: "ACTIVATED", conversationId: "b", payload: { reason: "AGENT" } },
    ]);
    expect(find(r.state, "b").activeSince).toEqual(t(30));
    expect(find(r.state, "a").parkedAt).toEqual(t(30));
  });

  it("repairs a stored state with two ACTIVE conversations on the next activation", () => {
    const c = (id: string): OwnedConversation => ({
      id,
      state: "ACTIVE",
      handleTimeMs: 0,
      activeSince: t(0),
      parkedAt: null,
      priority: 0,
      slaDueAt: null,
    });
    const broken: WorkingSet = { agentId: "agent", conversations: [c("a"), c("b")], interruption: null };
    const r = ok(activate(broken, "a", t(10)));
    expect(states(r.state)).toEqual({ a: "ACTIVE", b: "PARKED" });
    expect(r.events.map((e) => `${e.type}:${e.conversationId}`)).toEqual(["PARKED:b"]);
  });

  it("refuses what it cannot do and never modifies its input", () => {
    const { state } = run([["receive", "a", 0]]);
    const frozen = structuredClone(state);
    expect(activate(state, "zzz", t(1))).toEqual({ ok: false, error: "NOT_OWNED" });
    expect(park(state, "zzz", t(1))).toEqual({ ok: false, error: "NOT_OWNED" });
    expect(release(state, "zzz", t(1))).toEqual({ ok: false, error: "NOT_OWNED" });
    ok(park(state, "a", t(5)));
    ok(interrupt(state, t(5)));
    ok(release(state, "a", t(5)));
    expect(state).toEqual(frozen);
  });

  it("repeats of an applied operation succeed with no events", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["park", "a", 10],
    ]);
    expect(ok(park(state, "a", t(20))).events).toEqual([]);
    expect(ok(resume(state, t(20))).events).toEqual([]);
    const interrupted = ok(interrupt(state, t(20))).state;
    expect(ok(interrupt(interrupted, t(30)))).toEqual({ ok: true, state: interrupted, events: [] });
  });
});

describe("working set: interruptions", () => {
  it("interrupt parks and remembers the active one; resume re-activates it", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["receive", "b", 0],
    ]);
    const i = ok(interrupt(state, t(60), "voice call"));
    expect(states(i.state)).toEqual({ a: "PARKED", b: "PARKED" });
    expect(i.state.interruption).toEqual({ since: t(60), conversationId: "a", reason: "voice call" });
    expect(i.events).toEqual([
      { type: "INTERRUPTED", conversationId: "a", payload: { reason: "voice call" } },
      {
        type: "PARKED",
        conversationId: "a",
        payload: { reason: "INTERRUPT", sessionMs: 60_000, handleTimeMs: 60_000 },
      },
    ]);
    const r = ok(resume(i.state, t(360)));
    expect(states(r.state)).toEqual({ a: "ACTIVE", b: "PARKED" });
    expect(r.state.interruption).toBeNull();
    expect(r.events).toEqual([
      { type: "RESUMED", conversationId: "a", payload: { interruptedMs: 300_000, reactivated: true } },
      { type: "ACTIVATED", conversationId: "a", payload: { reason: "RESUMED" } },
    ]);
  });

  it("during the call, activation is refused and deliveries arrive parked", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["interrupt", 10],
    ]);
    expect(activate(state, "a", t(20))).toEqual({ ok: false, error: "INTERRUPTED" });
    const delivered = ok(receive(state, item("b"), t(20))).state;
    expect(states(delivered)).toEqual({ a: "PARKED", b: "PARKED" });
    expect(presentNext(delivered, "MOST_URGENT")).toBeNull();
  });

  it("a second interrupt keeps the first memory", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["interrupt", 10],
      ["interrupt", 20],
      ["resume", 30],
    ]);
    expect(states(state)).toEqual({ a: "ACTIVE" });
  });

  it("resume re-activates nothing when the remembered conversation is gone", () => {
    const { state, events } = run([
      ["receive", "a", 0],
      ["receive", "b", 0],
      ["interrupt", 10],
      ["release", "a", 20],
      ["resume", 30],
    ]);
    expect(states(state)).toEqual({ b: "PARKED" });
    expect(events.at(-1)).toEqual({
      type: "RESUMED",
      conversationId: null,
      payload: { interruptedMs: 20_000, reactivated: false },
    });
  });

  it("interrupting an agent with nothing active still blocks activation until resume", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["park", "a", 5],
      ["interrupt", 10],
    ]);
    expect(state.interruption?.conversationId).toBeNull();
    expect(activate(state, "a", t(11))).toEqual({ ok: false, error: "INTERRUPTED" });
    const resumed = ok(resume(state, t(20)));
    expect(states(resumed.state)).toEqual({ a: "PARKED" });
    expect(ok(activate(resumed.state, "a", t(21))).events).toHaveLength(1);
  });
});

describe("working set: present next", () => {
  const parkedConv = (
    id: string,
    parkedAtS: number,
    priority: number,
    slaInS: number | null,
  ): OwnedConversation => ({
    id,
    state: "PARKED",
    handleTimeMs: 0,
    activeSince: null,
    parkedAt: t(parkedAtS),
    priority,
    slaDueAt: slaInS === null ? null : t(slaInS),
  });
  const ws = (...conversations: OwnedConversation[]): WorkingSet => ({
    agentId: "agent",
    conversations,
    interruption: null,
  });

  it.each<{ name: string; set: WorkingSet; policy: PresentNextPolicy; expected: string | null }>([
    {
      name: "most urgent: earliest SLA deadline",
      set: ws(parkedConv("old", 0, 0, 9000), parkedConv("due", 50, 0, 600), parkedConv("nosla", 0, 9, null)),
      policy: "MOST_URGENT",
      expected: "due",
    },
    {
      name: "most urgent: equal deadline → higher priority",
      set: ws(parkedConv("p1", 0, 1, 600), parkedConv("p5", 50, 5, 600)),
      policy: "MOST_URGENT",
      expected: "p5",
    },
    {
      name: "most urgent: no SLAs, equal priority → parked longest",
      set: ws(parkedConv("late", 50, 0, null), parkedConv("early", 10, 0, null)),
      policy: "MOST_URGENT",
      expected: "early",
    },
    {
      name: "oldest parked ignores SLA and priority",
      set: ws(parkedConv("due", 50, 9, 60), parkedConv("early", 10, 0, null)),
      policy: "OLDEST_PARKED",
      expected: "early",
    },
    { name: "NONE presents nothing", set: ws(parkedConv("a", 0, 0, 60)), policy: "NONE", expected: null },
    { name: "empty inbox", set: ws(), policy: "MOST_URGENT", expected: null },
    {
      name: "something active: nothing to present",
      set: ws(parkedConv("a", 0, 0, 60), {
        ...parkedConv("b", 0, 0, null),
        state: "ACTIVE",
        activeSince: t(0),
        parkedAt: null,
      }),
      policy: "MOST_URGENT",
      expected: null,
    },
  ])("$name", ({ set, policy, expected }) => {
    expect(presentNext(set, policy)).toBe(expected);
  });

  it("the presented conversation is activated with reason PRESENTED", () => {
    const { state } = run([
      ["receive", "a", 0],
      ["receive", "b", 1],
      ["release", "a", 30],
    ]);
    const next = presentNext(state, "OLDEST_PARKED");
    expect(next).toBe("b");
    expect(ok(activate(state, next!, t(30), "PRESENTED")).events).toEqual([
      { type: "ACTIVATED", conversationId: "b", payload: { reason: "PRESENTED" } },
    ]);
  });
});

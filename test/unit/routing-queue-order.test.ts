import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { QueueOrder } from "../../src/engine/domain.js";
import { compareWaiting, orderWaiting, queueScore } from "../../src/engine/routing/queue-order.js";
import { conv, minutesAgo, NOW } from "./routing-fixtures.js";

const ids = (items: readonly { id: string }[]) => items.map((i) => i.id);

describe("queue order: PRIORITY_SCORE", () => {
  it.each([
    {
      name: "higher priority first at equal wait",
      items: [conv("low", { priority: 1 }), conv("high", { priority: 5 })],
      expected: ["high", "low"],
    },
    {
      name: "longer wait first at equal priority",
      items: [conv("new", { enqueuedAt: minutesAgo(1) }), conv("old", { enqueuedAt: minutesAgo(10) })],
      expected: ["old", "new"],
    },
    {
      name: "each minute waited is worth one priority point",
      items: [
        conv("p3-now", { priority: 3, enqueuedAt: minutesAgo(0) }),
        conv("p0-4min", { priority: 0, enqueuedAt: minutesAgo(4) }),
      ],
      expected: ["p0-4min", "p3-now"],
    },
    {
      name: "equal score: earlier enqueuedAt first",
      items: [
        conv("p1-5min", { priority: 1, enqueuedAt: minutesAgo(5) }),
        conv("p0-6min", { priority: 0, enqueuedAt: minutesAgo(6) }),
      ],
      expected: ["p0-6min", "p1-5min"],
    },
    {
      name: "equal score and enqueuedAt: id decides",
      items: [conv("b"), conv("c"), conv("a")],
      expected: ["a", "b", "c"],
    },
    {
      name: "a future enqueuedAt (clock skew) counts as zero wait, not negative",
      items: [
        conv("future", { priority: 2, enqueuedAt: minutesAgo(-30) }),
        conv("now-p1", { priority: 1, enqueuedAt: minutesAgo(0) }),
      ],
      expected: ["future", "now-p1"],
    },
  ])("$name", ({ items, expected }) => {
    expect(ids(orderWaiting(items, NOW, "PRIORITY_SCORE"))).toEqual(expected);
    expect(ids([...items].sort((a, b) => compareWaiting(a, b, NOW, "PRIORITY_SCORE")))).toEqual(expected);
  });

  it.each([
    [0, 0, 0],
    [3, 0, 3],
    [0, 1.5, 1.5],
    [2, 10, 12],
    [1, -5, 1],
  ])("queueScore(priority %d, waited %d min) = %d", (priority, minutes, expected) => {
    expect(queueScore(conv("x", { priority, enqueuedAt: minutesAgo(minutes) }), NOW)).toBe(expected);
  });
});

describe("queue order: SLA_REMAINING", () => {
  const due = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000);
  it.each([
    {
      name: "least time remaining first, overdue before due",
      items: [
        conv("in-60", { slaDueAt: due(60) }),
        conv("overdue", { slaDueAt: due(-5) }),
        conv("in-10", { slaDueAt: due(10) }),
      ],
      expected: ["overdue", "in-10", "in-60"],
    },
    {
      name: "no SLA goes after every SLA, whatever its priority",
      items: [conv("none-p9", { priority: 9 }), conv("in-600", { slaDueAt: due(600) })],
      expected: ["in-600", "none-p9"],
    },
    {
      name: "equal deadline: priority score decides",
      items: [conv("p1", { priority: 1, slaDueAt: due(5) }), conv("p4", { priority: 4, slaDueAt: due(5) })],
      expected: ["p4", "p1"],
    },
    {
      name: "without SLA among themselves: priority score",
      items: [conv("young", { enqueuedAt: minutesAgo(1) }), conv("old", { enqueuedAt: minutesAgo(50) })],
      expected: ["old", "young"],
    },
  ])("$name", ({ items, expected }) => {
    expect(ids(orderWaiting(items, NOW, "SLA_REMAINING"))).toEqual(expected);
    expect(ids([...items].sort((a, b) => compareWaiting(a, b, NOW, "SLA_REMAINING")))).toEqual(expected);
  });
});

describe("queue order properties", () => {
  const itemArb = fc.record({
    id: fc.string({ minLength: 1, maxLength: 3 }),
    priority: fc.integer({ min: -5, max: 20 }),
    enqueuedMinutesAgo: fc.integer({ min: 0, max: 600 }),
    slaInMinutes: fc.option(fc.integer({ min: -100, max: 1000 })),
  });
  const toItems = (
    raw: { id: string; priority: number; enqueuedMinutesAgo: number; slaInMinutes: number | null }[],
  ) =>
    raw.map((r, i) =>
      conv(`${r.id}-${i}`, {
        priority: r.priority,
        enqueuedAt: minutesAgo(r.enqueuedMinutesAgo),
        slaDueAt: r.slaInMinutes === null ? null : new Date(NOW.getTime() + r.slaInMinutes * 60_000),
      }),
    );

  it("orderWaiting matches compareWaiting and is stable as time passes", () => {
    fc.assert(
      fc.property(
        fc.array(itemArb, { maxLength: 40 }),
        fc.constantFrom<QueueOrder>("PRIORITY_SCORE", "SLA_REMAINING"),
        fc.integer({ min: 0, max: 100_000 }),
        (raw, order, laterMinutes) => {
          const items = toItems(raw);
          const ordered = ids(orderWaiting(items, NOW, order));
          expect(ids([...items].sort((a, b) => compareWaiting(a, b, NOW, order)))).toEqual(ordered);
          // The score grows by the same amount for everyone, so waiting never reorders the queue.
          const later = new Date(NOW.getTime() + laterMinutes * 60_000);
          expect(ids(orderWaiting(items, later, order))).toEqual(ordered);
        },
      ),
      { numRuns: 200 },
    );
  });
});

import { describe, expect, it } from "vitest";
import { ByteBudget } from "../../src/connectors/byte-budget.js";

const tick = () => new Promise((r) => setImmediate(r));

describe("ByteBudget", () => {
  it("grants what fits at once and queues the rest in order until bytes come back", async () => {
    const b = new ByteBudget(100);
    const r1 = await b.acquire(60);
    const order: string[] = [];
    const second = b.acquire(50).then((r) => {
      order.push("50");
      return r;
    });
    const third = b.acquire(10).then((r) => {
      order.push("10"); // fits, but waits its turn
      return r;
    });
    await tick();
    expect(order).toEqual([]);
    expect(b.held).toBe(60);
    r1();
    const [r2, r3] = await Promise.all([second, third]);
    expect(order).toEqual(["50", "10"]);
    expect(b.held).toBe(60);
    r2();
    r2(); // giving back twice gives back once
    expect(b.held).toBe(10);
    r3();
    expect(b.held).toBe(0);
    expect(b.peak).toBe(60);
  });

  it("a request larger than the whole budget is served when nothing else is held", async () => {
    const b = new ByteBudget(100);
    const small = await b.acquire(30);
    let big: (() => void) | null = null;
    const pending = b.acquire(250).then((r) => {
      big = r;
    });
    await tick();
    expect(big).toBeNull();
    small();
    await pending;
    expect(b.held).toBe(250);
    big!();
    expect(b.held).toBe(0);
  });

  it("a holding takes what fits now, never waits, never jumps the queue, and gives all back once", async () => {
    const b = new ByteBudget(100);
    const a = b.holding();
    expect(a.tryAdd(30)).toBe(true);
    expect(a.tryAdd(40)).toBe(true); // grows piece by piece
    expect(b.held).toBe(70);
    expect(b.holding().tryAdd(40)).toBe(false); // does not fit
    const waiting = b.acquire(40);
    a.release();
    a.release(); // once
    await waiting;
    expect(b.held).toBe(40);
    expect(a.tryAdd(1)).toBe(false); // released: takes nothing more
    const queued = b.acquire(70); // waits: 40 + 70 > 100
    expect(b.holding().tryAdd(10)).toBe(false); // fits, but someone waits first
    expect(b.held).toBe(40);
    void queued;
  });
});

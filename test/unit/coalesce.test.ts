import { describe, expect, it } from "vitest";
import { coalesce } from "../../src/engine/coalesce.js";

/** A trigger stream the test pushes into by hand. */
function triggers() {
  const queue: number[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  let returned = false;
  const it: AsyncIterator<number> = {
    async next() {
      for (;;) {
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        if (done) return { value: undefined, done: true };
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
    async return() {
      returned = true;
      done = true;
      wake?.();
      return { value: undefined, done: true };
    },
  };
  return {
    it,
    push(n: number) {
      queue.push(n);
      const w = wake;
      wake = null;
      w?.();
    },
    end() {
      done = true;
      wake?.();
    },
    get returned() {
      return returned;
    },
  };
}

describe("coalesce", () => {
  it("folds a burst into at most two computations, the last seeing the last trigger", async () => {
    const src = triggers();
    let state = 0;
    let computations = 0;
    const out = coalesce(
      src.it,
      async () => {
        computations++;
        return state;
      },
      10,
      { value: -1 },
    );
    expect((await out.next()).value).toBe(-1);
    for (let i = 1; i <= 100; i++) {
      state = i;
      src.push(i);
    }
    src.end();
    const values: number[] = [];
    for await (const v of out) values.push(v);
    expect(computations).toBeLessThanOrEqual(2);
    expect(values.length).toBe(computations);
    expect(values.at(-1)).toBe(100);
  });

  it("a trigger during a computation is never lost: one more computation follows", async () => {
    const src = triggers();
    let state = 0;
    const seen: number[] = [];
    const out = coalesce(
      src.it,
      async () => {
        const read = state;
        if (read === 1) {
          // A change lands while the figures are being read.
          state = 2;
          src.push(2);
        }
        seen.push(read);
        return read;
      },
      5,
    );
    state = 1;
    src.push(1);
    expect((await out.next()).value).toBe(1);
    expect((await out.next()).value).toBe(2);
    src.end();
    expect((await out.next()).done).toBe(true);
    expect(seen).toEqual([1, 2]);
  });

  it("return() ends a waiting stream and closes the triggers", async () => {
    const src = triggers();
    const out = coalesce(src.it, async () => 1, 1000);
    const pending = out.next();
    await out.return?.();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(src.returned).toBe(true);
  });

  it("a failing trigger stream fails the next read", async () => {
    const bad: AsyncIterator<number> = {
      next: async () => {
        throw new Error("hub gone");
      },
    };
    const out = coalesce(bad, async () => 1, 10);
    await expect(out.next()).rejects.toThrow("hub gone");
  });
});

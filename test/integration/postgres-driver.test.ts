import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { describe, expect, inject, it } from "vitest";

/**
 * postgres.js 3.4.9 crashes the process when a connection's backend dies while a small
 * write is buffered (porsager/postgres#1154, #1208). scripts/patch-deps.mjs fixes it after
 * every install; this reproduces the crash path on a reserved connection (the deterministic
 * case from #1208) and asserts a catchable error instead of an uncaught TypeError.
 */
describe("postgres.js driver patch", () => {
  it("is applied to the installed driver (ESM and CommonJS builds)", () => {
    // The CommonJS entry is <package>/cjs/src/index.js.
    const pkg = dirname(dirname(dirname(createRequire(import.meta.url).resolve("postgres"))));
    for (const rel of ["src/connection.js", "cjs/src/connection.js"]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: postgres#1208");
    }
  });

  it("a query on a connection whose backend was terminated fails with an error, the process lives on", async () => {
    const url = inject("pgAdminUrl");
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    const killer = postgres(url, { max: 1, onnotice: () => {} });
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", onUncaught);
    try {
      const reserved = await sql.reserve();
      const [row] = await reserved<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      await killer`SELECT pg_terminate_backend(${row!.pid})`;
      // Until the backend is gone (its socket closed), then let the client read the close.
      for (let n = 0; ; n++) {
        const [alive] = await killer<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${row!.pid}`;
        if (alive!.n === 0) break;
        if (n > 500) throw new Error("the terminated backend did not exit");
        await new Promise((r) => setImmediate(r));
      }
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      const outcome = await Promise.race([
        reserved`SELECT 1 AS one`.then(
          () => "ok",
          (err: { code?: string }) => `error:${err.code ?? "?"}`,
        ),
        new Promise((r) => setTimeout(() => r("hang"), 3000)),
      ]);
      expect(outcome).toMatch(/^error:/);
      await new Promise((r) => setImmediate(r));
      expect(uncaught).toEqual([]);
      reserved.release();
    } finally {
      process.off("uncaughtException", onUncaught);
      await sql.end({ timeout: 1 });
      await killer.end({ timeout: 1 });
    }
  });
});

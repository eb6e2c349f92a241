import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { type AddressInfo, connect, createServer } from "node:net";
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
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: binary bytea");
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: fewer copies");
    }
    for (const rel of ["src/bytes.js", "cjs/src/bytes.js"]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: fewer copies");
    }
    for (const rel of ["src/index.js", "cjs/src/index.js", "src/connection.js", "cjs/src/connection.js"]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: reserved pipeline");
    }
    for (const rel of ["src/index.js", "cjs/src/index.js", "src/connection.js", "cjs/src/connection.js"]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: reserved close");
    }
    for (const rel of ["src/query.js", "cjs/src/query.js", "src/result.js", "cjs/src/result.js"]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: species as data");
    }
  });

  it("a query's then() gives a plain Promise and a result's map() a plain Array (species as data)", async () => {
    const sql = postgres(inject("pgAdminUrl"), { max: 1, onnotice: () => {} });
    try {
      const query = sql<{ n: number }[]>`SELECT generate_series(1, 3) AS n`;
      const chained = query.then((rows) => rows);
      // Were species not Promise, then() would construct a Query from an executor and throw.
      expect(Object.getPrototypeOf(chained)).toBe(Promise.prototype);
      const rows = await chained;
      expect(rows.count).toBe(3);
      expect(rows.command).toBe("SELECT");
      expect(Object.keys(rows)).toEqual(["0", "1", "2"]);
      const mapped = rows.map((r) => r.n * 2);
      expect(Object.getPrototypeOf(mapped)).toBe(Array.prototype);
      expect(mapped).toEqual([2, 4, 6]);
      const unsafe = await sql.unsafe("SELECT $1::int AS n", [7]).then((r) => r.filter(() => true));
      expect(Object.getPrototypeOf(unsafe)).toBe(Array.prototype);
      expect(unsafe).toEqual([{ n: 7 }]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("binds bytea parameters in binary format and round-trips every byte value", async () => {
    const url = inject("pgAdminUrl");
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const all = Buffer.from(Array.from({ length: 256 * 4 }, (_, i) => i % 256));
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5c); // backslashes: hex/escape-format traps
    try {
      // Named (prepared) statement, bytea next to text, int and null parameters.
      const [a] = await sql<{ b: Buffer; t: string; n: number; z: Buffer | null; len: number }[]>`
        SELECT ${all}::bytea AS b, ${"\\x00 text"}::text AS t, ${42}::int AS n,
               ${null}::bytea AS z, octet_length(${all}::bytea) AS len`;
      expect(Buffer.compare(a!.b, all)).toBe(0);
      expect(a!.t).toBe("\\x00 text");
      expect(a!.n).toBe(42);
      expect(a!.z).toBeNull();
      expect(a!.len).toBe(all.length);
      // Unnamed statement, an empty value, a Uint8Array view into a larger buffer, a large value.
      const view = new Uint8Array(all.buffer, all.byteOffset + 10, 20);
      const [b] = await sql.unsafe<{ e: number; v: string; l: string }[]>(
        "SELECT octet_length($1::bytea) AS e, encode($2::bytea, 'hex') AS v, md5($3::bytea) AS l",
        [Buffer.alloc(0), view as Buffer, big],
        { prepare: false },
      );
      expect(b!.e).toBe(0);
      expect(b!.v).toBe(Buffer.from(view).toString("hex"));
      expect(b!.l).toBe(createHash("md5").update(big).digest("hex"));
      // A bytea given as a string is sent as before: text format, the string's UTF-8 bytes.
      const [c] = await sql<{ v: Buffer }[]>`SELECT ${"\\x0102ff é"}::bytea AS v`;
      expect(c!.v.toString("utf8")).toBe("\\x0102ff é");
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("sends large values as chunks of their own and every byte arrives (fewer copies)", async () => {
    const sql = postgres(inject("pgAdminUrl"), { max: 1, onnotice: () => {} });
    const md5 = (b: Buffer | string) => createHash("md5").update(b).digest("hex");
    // Over and under the 8 KB threshold; multi-byte text, so bytes ≠ characters.
    const bin = Buffer.from(Array.from({ length: 70_001 }, (_, i) => (i * 7) % 256));
    const text = "é€😀 line\r\n".repeat(3_000);
    const smallText = "ä".repeat(100);
    const edge = "x".repeat(8192);
    const view = new Uint8Array(bin.buffer, bin.byteOffset + 1_000, 20_000);
    try {
      const check = (r: { a: string; b: string; c: string; d: string; e: string; f: number } | undefined) => {
        expect(r).toEqual({
          a: md5(bin),
          b: md5(text),
          c: md5(smallText),
          d: md5(edge),
          e: md5(Buffer.from(view)),
          f: 5,
        });
      };
      const q = (prepare: boolean) =>
        sql.unsafe<{ a: string; b: string; c: string; d: string; e: string; f: number }[]>(
          `SELECT md5($1::bytea) AS a, md5(convert_to($2::text, 'UTF8')) AS b,
                  md5(convert_to($3::text, 'UTF8')) AS c, md5($4::text) AS d, md5($5::bytea) AS e,
                  $6::int AS f`,
          [bin, text, smallText, edge, view as Buffer, 5],
          { prepare },
        );
      // Unnamed, first named (described first), named again (prepared): three Bind paths.
      check((await q(false))[0]);
      check((await q(true))[0]);
      check((await q(true))[0]);
      // Pipelined in one tick, large and small queries mixed: pending writes leave together.
      const many = await Promise.all([
        q(true),
        sql`SELECT 1 AS one`,
        q(false),
        sql`SELECT ${"y".repeat(9_000)}::text AS long`,
        q(true),
      ]);
      check(many[0][0] as never);
      check(many[2][0] as never);
      check(many[4][0] as never);
      expect((many[3][0] as { long: string }).long).toBe("y".repeat(9_000));
      // A cursor (Execute with a row count) with a large parameter.
      const seen: number[] = [];
      await sql`SELECT g, md5(${bin}::bytea) AS h FROM generate_series(1, 5) g`.cursor(2, (rows) => {
        for (const r of rows) {
          expect(r.h).toBe(md5(bin));
          seen.push(r.g as number);
        }
      });
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      // COPY FROM STDIN writes its data through the builder's raw().
      const reserved = await sql.reserve();
      try {
        await reserved`CREATE TEMP TABLE copy_check (v text)`;
        const writable = await reserved`COPY copy_check (v) FROM STDIN`.writable();
        const lines = Array.from({ length: 2_000 }, (_, i) => `row ${i} ${"z".repeat(50)}\n`).join("");
        await new Promise<void>((resolve, reject) => {
          writable.on("error", reject);
          writable.on("finish", resolve);
          writable.write(Buffer.from(lines));
          writable.end();
        });
        const [c] = await reserved<{ n: number; h: string }[]>`
          SELECT count(*)::int AS n, md5(string_agg(v || E'\n', '' ORDER BY v COLLATE "C")) AS h FROM copy_check`;
        expect(c!.n).toBe(2_000);
        const sorted = lines
          .split("\n")
          .slice(0, -1)
          .sort()
          .map((l) => `${l}\n`)
          .join("");
        expect(c!.h).toBe(md5(sorted));
      } finally {
        reserved.release();
      }
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("keeps pipelining on a reserved connection after a large write, in order, and an error stops what follows it", async () => {
    const sql = postgres(inject("pgAdminUrl"), { max: 2, onnotice: () => {} });
    const big = Buffer.alloc(200_000, 0x41); // over the socket's high-water mark: backpressure
    const conn = await sql.reserve();
    try {
      await conn`CREATE TEMP TABLE pipe_check (n int PRIMARY KEY, b bytea)`;
      // Hundreds of statements sent without waiting (more than max_pipeline), large ones
      // among them: every one runs, in the order sent.
      const pending: Promise<unknown>[] = [];
      for (let n = 0; n < 300; n++) {
        pending.push(
          n % 10 === 0
            ? conn`INSERT INTO pipe_check (n, b) VALUES (${n}, ${big})`
            : conn`INSERT INTO pipe_check (n) VALUES (${n})`,
        );
      }
      await Promise.all(pending);
      const [row] = await conn<{ c: number; s: number; m: string }[]>`
        SELECT count(*)::int AS c, sum(octet_length(b))::int AS s, md5(string_agg(n::text, ',' ORDER BY ctid)) AS m
        FROM pipe_check`;
      expect(row!.c).toBe(300);
      expect(row!.s).toBe(30 * big.length);
      expect(row!.m).toBe(
        createHash("md5")
          .update(Array.from({ length: 300 }, (_, n) => n).join(","))
          .digest("hex"),
      );
      // In a transaction, a failing statement aborts it: the statements behind it fail
      // too (25P02) and none of their effects remain.
      await conn`BEGIN`;
      const results = await Promise.allSettled([
        conn`INSERT INTO pipe_check (n, b) VALUES (1000, ${big})`,
        conn`INSERT INTO pipe_check (n) VALUES (0)`, // duplicate key
        conn`INSERT INTO pipe_check (n, b) VALUES (1001, ${big})`,
        conn`SELECT 1`,
      ]);
      await conn`ROLLBACK`;
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected"]);
      expect((results[1] as PromiseRejectedResult).reason.code).toBe("23505");
      expect((results[2] as PromiseRejectedResult).reason.code).toBe("25P02");
      const [after] = await conn<{ c: number }[]>`SELECT count(*)::int AS c FROM pipe_check WHERE n >= 1000`;
      expect(after!.c).toBe(0);
    } finally {
      conn.release();
      await sql.end({ timeout: 1 });
    }
  });

  it("sends the queries behind a large write while an earlier one still runs (reserved pipeline)", async () => {
    // A proxy sees what the driver has written: unpatched, a write over the socket's
    // high-water mark made the reserved connection send the rest one per round trip, so a
    // query behind a blocked one never left the process until that one finished.
    const target = new URL(inject("pgAdminUrl"));
    const seen: Buffer[] = [];
    const proxy = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      client.on("data", (d: Buffer) => seen.push(d));
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const via = new URL(target);
    via.port = String((proxy.address() as AddressInfo).port);
    const sql = postgres(via.toString(), { max: 1, onnotice: () => {} });
    const holder = postgres(target.toString(), { max: 1, onnotice: () => {} });
    const key = 731_906;
    const marker = "pipelined-marker-31f7";
    try {
      const lock = await holder.reserve();
      await lock`SELECT pg_advisory_lock(${key})`;
      const conn = await sql.reserve();
      const big = Buffer.alloc(200_000, 0x42);
      // The statements are prepared first: a statement's first run waits for its Describe
      // in any case, and that wait is not what this is about.
      await conn`SELECT octet_length(${Buffer.alloc(1)}::bytea) AS n`;
      await conn`SELECT pg_advisory_lock(${key + 1})`;
      await conn`SELECT ${"warm"}::text AS m`;
      // Queries are lazy until executed; these three go to the driver now, in this order.
      const first = conn<{ n: number }[]>`SELECT octet_length(${big}::bytea) AS n`.execute();
      const blocked = conn`SELECT pg_advisory_lock(${key})`.execute();
      const behind = conn<{ m: string }[]>`SELECT ${marker}::text AS m`.execute();
      const wrote = async (): Promise<boolean> => {
        for (let i = 0; i < 200; i++) {
          if (Buffer.concat(seen).includes(marker)) return true;
          await new Promise((r) => setTimeout(r, 10));
        }
        return false;
      };
      const sentWhileBlocked = await wrote();
      await lock`SELECT pg_advisory_unlock(${key})`;
      lock.release();
      expect((await first)[0]!.n).toBe(big.length);
      await blocked;
      expect((await behind)[0]!.m).toBe(marker);
      await conn`SELECT pg_advisory_unlock_all()`;
      conn.release();
      expect(sentWhileBlocked).toBe(true);
    } finally {
      await sql.end({ timeout: 1 });
      await holder.end({ timeout: 1 });
      proxy.close();
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

  it("every query waiting on a reserved connection settles when its backend dies, and the pool serves on (reserved close)", async () => {
    // Queued behind a running statement past max_pipeline, 149 of 151 never settled after
    // pg_terminate_backend (probe, session 16): an IMAP mailbox worker waiting on one of
    // them stopped for good. And the released connection went back with the open ones: the
    // next query given to it failed.
    const url = inject("pgAdminUrl");
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const killer = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const reserved = await sql.reserve();
      const [row] = await reserved<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      const outcomes: (string | undefined)[] = [];
      const queries = [reserved`SELECT pg_sleep(5)`.execute()];
      for (let i = 0; i < 150; i++) queries.push(reserved`SELECT ${i}::int AS i`.execute());
      queries.forEach((q, i) => {
        q.then(
          () => {
            outcomes[i] = "ok";
          },
          (err: { code?: string }) => {
            outcomes[i] = `error:${err.code ?? "?"}`;
          },
        );
      });
      await new Promise((r) => setTimeout(r, 300));
      await killer`SELECT pg_terminate_backend(${row!.pid})`;
      const settled = await Promise.race([
        Promise.allSettled(queries).then(() => true),
        new Promise((r) => setTimeout(() => r(false), 4000)),
      ]);
      expect(settled).toBe(true);
      expect(outcomes.every((o) => o?.startsWith("error:"))).toBe(true);
      // Given after the close: refused at once, not queued.
      const late = await reserved`SELECT 1`.then(
        () => "ok",
        (err: { code?: string }) => `error:${err.code ?? "?"}`,
      );
      expect(late).toMatch(/^error:/);
      reserved.release();
      // The pool's only connection: reconnected for the next query, which succeeds.
      for (let i = 0; i < 3; i++) expect(await sql<{ one: number }[]>`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    } finally {
      await sql.end({ timeout: 1 });
      await killer.end({ timeout: 1 });
    }
  });
});

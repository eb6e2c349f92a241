/**
 * What the benches share: their `--name N` arguments, a free loopback port, and a database
 * (DATABASE_URL as it is, or a throwaway embedded PostgreSQL in a temp dir, fsync off,
 * with bench/pgss.ts's settings).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { runMigrations } from "../src/db/migrate.js";
import { pgssSettings } from "./pgss.js";

/** `--name N` from the command line: a positive integer, else `fallback`. */
export function intArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A migrated database for bench `name`; `stop()` removes an embedded one and its files. */
export async function benchDatabase(name: string): Promise<{ url: string; stop(): Promise<void> }> {
  let url = process.env.DATABASE_URL ?? "";
  let stop = async () => {};
  if (!url) {
    const dir = mkdtempSync(join(tmpdir(), `sb-bench-${name}-`));
    const pg = await startEmbeddedPostgres({
      dataDir: dir,
      port: await freePort(),
      persistent: false,
      ...pgssSettings(),
    });
    url = pg.url;
    stop = async () => {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  await runMigrations(url);
  return { url, stop };
}

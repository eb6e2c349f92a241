/**
 * A second Switchboard process on the same database, for the concurrency proof: started
 * as a child process (`node --import tsx`), it prints `READY <url>` and stops on SIGTERM.
 */
import { startSwitchboard } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/engine/context.js";

const config = loadConfig({
  NODE_ENV: "test",
  DATABASE_URL: process.env.DATABASE_URL ?? "",
  PORT: "0",
  HOST: "127.0.0.1",
  SMTP_ENABLED: "false",
  BOOTSTRAP: "false",
  SECRET_KEY: "11".repeat(32),
  LOG_LEVEL: "silent",
});
const app = await startSwitchboard(config, { log: silentLogger });
process.stdout.write(`READY ${app.http.url}\n`);
process.on("SIGTERM", () => {
  void app.stop().finally(() => process.exit(0));
});

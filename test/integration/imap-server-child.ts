/**
 * A whole Switchboard server as a child process for the crash and two-process tests:
 * the same composition root as `npm start`, configured from the environment the test
 * passes. Prints "ready" once started; SIGTERM stops it cleanly, SIGKILL is the crash.
 */
import { startSwitchboard } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/engine/context.js";

const app = await startSwitchboard(loadConfig(process.env), { log: silentLogger });
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  void app.stop().then(() => process.exit(0));
});

/**
 * The capturing sink in its own process for benches, as a real MTA would be: the
 * sender under test then does not share its event loop with the server it talks to.
 * Protocol over the IPC channel: sends `{ port }` once listening; answers "count" with
 * `{ count, bytes, cpuMs }`; on "close" shuts down and exits.
 */
import { startCapturingSink } from "../test/helpers/smtp-sinks.js";

const sink = await startCapturingSink({ starttls: false });
process.send?.({ port: sink.port });
process.on("message", async (msg) => {
  if (msg === "count") {
    const bytes = sink.messages.reduce((n, m) => n + m.raw.length, 0);
    const cpu = process.cpuUsage();
    process.send?.({ count: sink.messages.length, bytes, cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (msg === "close") {
    await sink.close();
    process.exit(0);
  }
});

/**
 * The SMTP senders of `bench/ingest` in their own process, as real sending servers would
 * be: the server under test then does not share its event loop with the clients' MIME
 * streaming. Protocol over the IPC channel: receives `{ port, to, count, concurrency, run }`,
 * generates the mails (untimed), sends them over `concurrency` pooled connections and
 * answers `{ secs, latencies }` (ms from sendMail to the 250 reply, which the listener gives
 * only after commit); `{ port, to, largeBytes }` sends one mail of that size (built
 * untimed) and answers `{ response }` — the event-loop lag figure is the server's alone;
 * "close" exits.
 */
import nodemailer from "nodemailer";
import { buildLargeMail } from "../test/helpers/raw-mail.js";
import { typicalMail } from "./ingest-mail.js";

interface Job {
  port: number;
  to: string;
  count: number;
  concurrency: number;
  run: number;
}

interface LargeJob {
  port: number;
  to: string;
  largeBytes: number;
}

process.on("message", async (msg: Job | LargeJob | "close") => {
  if (msg === "close") process.exit(0);
  if ("largeBytes" in msg) {
    const big = buildLargeMail(msg.largeBytes);
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: msg.port,
      secure: false,
      ignoreTLS: true,
    });
    process.send?.("built");
    const info = await transport.sendMail({
      envelope: { from: "c@customer.example", to: [msg.to] },
      raw: big,
    });
    transport.close();
    process.send?.({ response: info.response });
    return;
  }
  const { port, to, count, concurrency, run } = msg;
  const mails = Array.from({ length: count }, (_, i) => typicalMail(to, i, run));
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: concurrency,
    maxMessages: Number.POSITIVE_INFINITY,
  });
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const s = performance.now();
        await transport.sendMail({ envelope: { from: "c@customer.example", to: [to] }, raw: mails[i]! });
        latencies.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  transport.close();
  process.send?.({ secs, latencies });
});
process.send?.("ready");

/**
 * MIME build CPU per message in isolation: `npm run bench -- mime-build [n=3000] [rounds=5]`.
 * Composes n replies of the send bench's shape once, then times buildRawMime over them,
 * `rounds` times (first round discarded as warm-up); prints CPU µs per build per round.
 */
import { buildRawMime } from "../src/connectors/smtp-out.js";
import { compose } from "../src/engine/outbound/compose.js";
import { replyInput } from "./reply-input.js";

const N = Number(process.argv[2] ?? 3000);
const ROUNDS = Number(process.argv[3] ?? 5);

const mails = Array.from({ length: N }, (_, i) => compose(replyInput(i)));
const perRound: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const c0 = process.cpuUsage();
  let bytes = 0;
  for (const m of mails) bytes += (await buildRawMime(m)).length;
  const c = process.cpuUsage(c0);
  const us = (c.user + c.system) / N;
  if (r > 0) perRound.push(us);
  console.log(`round ${r + 1}: ${us.toFixed(1)} µs CPU per build (${(bytes / N).toFixed(0)} bytes)`);
}
perRound.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    bench: "mime-build",
    metrics: { median_us_per_build: Math.round(perRound[Math.floor(perRound.length / 2)]! * 10) / 10 },
  }),
);

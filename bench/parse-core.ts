/**
 * parse-core: the MIME parse of the ingest bench's typical messages (2–50 KB of text,
 * every fifth with a 20–200 KB attachment) in this thread, without the worker pool, the
 * database or a network: `parseRawMessage` as a parser thread runs it (mailparser,
 * SHA-256 of raw and attachments, sanitising). Reports CPU per message of the whole
 * process (this thread plus V8's compiler and GC helpers) and wall time per message;
 * median of `runs` runs after one unmeasured warm-up run.
 *
 *   npm run bench -- parse-core [messages=2000] [runs=3]
 *
 * PARSE_GC_EVERY=n forces a full GC (node --expose-gc) after every n messages: what a
 * busy server's major GCs do to per-call closures' optimised code (docs/benchmarks.md,
 * session 5). The last line is the JSON result.
 */
import { parseRawMessage } from "../src/connectors/mime/mime-to-parsed.js";
import { MIME_PARSER_DEFAULTS } from "../src/connectors/mime/parse.js";
import { typicalMail } from "./ingest-mail.js";

const N = Number(process.argv[2] ?? 2000);
const RUNS = Number(process.argv[3] ?? 3);
const GC_EVERY = Number(process.env.PARSE_GC_EVERY ?? 0);
const gc = (globalThis as { gc?: () => void }).gc;
if (GC_EVERY > 0 && !gc) throw new Error("PARSE_GC_EVERY needs node --expose-gc");

const mails = Array.from({ length: 400 }, (_, i) => typicalMail("support@acme.example", i, 1));
const limits = {
  maxParts: MIME_PARSER_DEFAULTS.maxParts,
  maxHeaderBytes: MIME_PARSER_DEFAULTS.maxHeaderBytes,
  sanitize: true,
  maxHtmlChars: MIME_PARSER_DEFAULTS.maxHtmlChars,
  maxHtmlParseSteps: MIME_PARSER_DEFAULTS.maxHtmlParseSteps,
};

async function run(n: number): Promise<{ cpuMs: number; wallMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await parseRawMessage(mails[i % mails.length]!, limits);
    if (!r.ok) throw new Error(`parse failed: ${r.reason}`);
    if (GC_EVERY > 0 && i % GC_EVERY === 0) gc!();
  }
  const c = process.cpuUsage(c0);
  return { cpuMs: (c.user + c.system) / 1000 / n, wallMs: (performance.now() - t0) / n };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 1000) / 1000;

await run(Math.min(N, 500));
const results: { cpuMs: number; wallMs: number }[] = [];
for (let r = 0; r < RUNS; r++) {
  const x = await run(N);
  results.push(x);
  console.log(`run ${r + 1}: ${round(x.cpuMs)} ms CPU/msg (process), ${round(x.wallMs)} ms wall/msg`);
}
console.log(
  JSON.stringify({
    bench: "parse-core",
    metrics: {
      cpu_ms_per_msg: round(median(results.map((x) => x.cpuMs))),
      wall_ms_per_msg: round(median(results.map((x) => x.wallMs))),
      msgs_per_cpu_s: Math.round(1000 / median(results.map((x) => x.cpuMs))),
    },
  }),
);

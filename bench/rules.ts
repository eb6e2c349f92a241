/**
 * Benchmark: routing-rule evaluation and SLA deadline computation (pure engine code).
 *
 * `npx tsx bench/rules.ts` prints human-readable lines, then one JSON line
 * `{"bench":"rules","metrics":{…}}` for the bench runner. Each figure is the median of
 * five timed runs after a warm-up run. A baseline — a plain loop of `Date` arithmetic —
 * is measured the same way so results from different (noisy, shared) machines can be
 * compared through the ratios.
 */
import os from "node:os";
import { pathToFileURL } from "node:url";
import type { BusinessCalendar, IsoWeekday } from "../src/engine/domain.js";
import { compileRules } from "../src/engine/rules/compile.js";
import { evaluateRules } from "../src/engine/rules/evaluate.js";
import type { Action, Condition, Rule, RuleInput } from "../src/engine/rules/types.js";
import { addBusinessMinutes } from "../src/engine/time/calendar.js";
import { resolveSlaPolicy, slaDeadlines, startSlaClock } from "../src/engine/time/sla.js";

const RULES = 100;
const MESSAGES = 10_000;
const DEADLINES = 100_000;
const RUNS = 5;

/** mulberry32: a tiny seeded PRNG so every run sees the same data. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MON_FRI: IsoWeekday[] = [1, 2, 3, 4, 5];

export const berlinOffice: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: MON_FRI.map((weekday) => ({ weekday, start: "08:00", end: "17:00" })),
  holidays: [
    "2026-01-01",
    "2026-04-03",
    "2026-04-06",
    "2026-05-01",
    "2026-05-14",
    "2026-05-25",
    "2026-10-03",
    "2026-12-25",
    "2026-12-26",
  ].map((date) => ({ date, name: "Feiertag" })),
};

export const allHours: BusinessCalendar = {
  timeZone: "UTC",
  intervals: ([1, 2, 3, 4, 5, 6, 7] as IsoWeekday[]).map((weekday) => ({
    weekday,
    start: "00:00",
    end: "24:00",
  })),
  holidays: [],
};

export const splitShift: BusinessCalendar = {
  timeZone: "America/New_York",
  intervals: [
    ...MON_FRI.map((weekday) => ({ weekday, start: "07:00", end: "11:30" })),
    ...MON_FRI.map((weekday) => ({ weekday, start: "12:30", end: "16:00" })),
    ...MON_FRI.map((weekday) => ({ weekday, start: "22:00", end: "02:00" })),
  ],
  holidays: [{ date: "2026-07-03", name: "Independence Day (observed)" }],
};

const WORDS = (
  "invoice order delivery refund payment account password login error broken shipping " +
  "address change cancel subscription contract offer price discount complaint urgent help " +
  "question thanks regards please hello team support customer product warranty return label " +
  "tracking number missing damaged item the a of to and in for on with is it this that"
).split(" ");
const DOMAINS = ["example.com", "mail.de", "corp.example", "shop.test", "gmail.com", "web.de"];

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)] as T;
}

/** A plausible tenant rule set: mostly keyword and sender routing, some regexes, a catch-all. */
export function generateRules(count = RULES, seed = 1): Rule[] {
  const rnd = prng(seed);
  const rules: Rule[] = [];
  for (let i = 0; i < count - 1; i++) {
    const conditions: Condition[] = [];
    const n = 1 + Math.floor(rnd() * 3);
    for (let j = 0; j < n; j++) {
      const kind = rnd();
      if (kind < 0.3) conditions.push({ field: "subject", op: "CONTAINS", value: pick(rnd, WORDS) });
      else if (kind < 0.45)
        conditions.push({ field: "from", op: "CONTAINS", value: `@${pick(rnd, DOMAINS)}` });
      else if (kind < 0.55)
        conditions.push({ field: "to", op: "EQUALS", value: `support${i % 7}@switchboard.test` });
      else if (kind < 0.68)
        conditions.push({ field: "body", op: "CONTAINS", value: `${pick(rnd, WORDS)} ${pick(rnd, WORDS)}` });
      else if (kind < 0.73) conditions.push({ field: "subject", op: "REGEX", value: "order\\s*#?\\d{5,8}" });
      else if (kind < 0.76)
        conditions.push({ field: "body", op: "REGEX", value: "\\b(?:IBAN|BIC)\\b:?\\s*[A-Z]{2}\\d{2}" });
      else if (kind < 0.82)
        conditions.push({ field: "header", header: "X-Priority", op: "EQUALS", value: "1" });
      else if (kind < 0.86)
        conditions.push({ field: "language", op: "EQUALS", value: pick(rnd, ["de", "en", "fr"]) });
      else if (kind < 0.9) conditions.push({ field: "spam", value: false });
      else if (kind < 0.95)
        conditions.push({ field: "contactAttribute", key: "tier", op: "EQUALS", value: "gold" });
      else conditions.push({ field: "receivedTime", calendar: berlinOffice, inside: rnd() < 0.5 });
    }
    const actions: Action[] = [];
    const a = rnd();
    if (a < 0.4) actions.push({ type: "SET_QUEUE", queueId: `queue-${i % 12}` });
    else if (a < 0.6) actions.push({ type: "ADD_TAGS", tags: [pick(rnd, WORDS), "auto"] });
    else if (a < 0.75) actions.push({ type: "SET_PRIORITY", priority: Math.floor(rnd() * 100) });
    else if (a < 0.9) actions.push({ type: "ADD_SKILLS", skillIds: [`skill-${i % 9}`] });
    else actions.push({ type: "SET_LANGUAGE", language: "de" });
    // A few rules end evaluation, late in the list so most messages see most rules.
    if (i > 80 && rnd() < 0.2) actions.push({ type: "STOP" });
    rules.push({
      id: `rule-${i}`,
      name: `Rule ${i}`,
      position: i * 10,
      enabled: rnd() > 0.05,
      conditions,
      match: rnd() < 0.7 ? "ALL" : "ANY",
      actions,
    });
  }
  rules.push({
    id: "catch-all",
    name: "Default queue",
    position: 100_000,
    enabled: true,
    conditions: [],
    match: "ALL",
    actions: [{ type: "SET_QUEUE", queueId: "queue-default" }],
  });
  return rules;
}

/** Messages with 300–4,000-character bodies, varied senders, headers and arrival times. */
export function generateMessages(count = MESSAGES, seed = 2): RuleInput[] {
  const rnd = prng(seed);
  const base = Date.UTC(2026, 0, 1);
  const out: RuleInput[] = [];
  for (let i = 0; i < count; i++) {
    const words = (k: number) => Array.from({ length: k }, () => pick(rnd, WORDS)).join(" ");
    const bodyWords = 50 + Math.floor(rnd() * 600);
    const subject = rnd() < 0.2 ? `Re: order #${10_000 + Math.floor(rnd() * 90_000)} ${words(3)}` : words(5);
    out.push({
      from: `${pick(rnd, WORDS)}.${pick(rnd, WORDS)}@${pick(rnd, DOMAINS)}`,
      to: [`support${i % 9}@switchboard.test`],
      cc: rnd() < 0.2 ? [`someone@${pick(rnd, DOMAINS)}`] : [],
      subject,
      bodyText: `Hello,\n\n${words(bodyWords)}\n\nRegards`,
      headers: {
        "x-priority": [rnd() < 0.1 ? "1" : "3"],
        "message-id": [`<${i}@${pick(rnd, DOMAINS)}>`],
      },
      spam: rnd() < 0.05,
      language: pick(rnd, ["de", "en", "en-GB", "fr", null]),
      contactAttributes: rnd() < 0.3 ? { tier: pick(rnd, ["gold", "silver"]) } : {},
      receivedAt: new Date(base + Math.floor(rnd() * 360 * 86_400_000)),
    });
  }
  return out;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

interface Rate {
  /** Median ops per wall-clock second. */
  wall: number;
  /** Median ops per second of this process's CPU time: steadier on a shared machine. */
  cpu: number;
}

/** Runs `body` once to warm up, then RUNS timed times; returns median rates. */
function measure(ops: number, body: () => number): Rate {
  let sink = body();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    sink += body();
    const ms = performance.now() - t0;
    const used = process.cpuUsage(c0);
    wall.push(ops / (ms / 1000));
    cpu.push(ops / ((used.user + used.system) / 1e6));
  }
  if (sink === Number.MIN_VALUE) console.log(sink); // keeps the work observable
  return { wall: median(wall), cpu: median(cpu) };
}

export async function run(): Promise<Record<string, number>> {
  const compiled = compileRules(generateRules());
  if (!compiled.ok) throw new Error(`bench rules invalid: ${JSON.stringify(compiled.errors.slice(0, 3))}`);
  const ruleSet = compiled.ruleSet;
  const messages = generateMessages();

  const ruleMsgsPerS = measure(messages.length, () => {
    let n = 0;
    for (const m of messages) n += evaluateRules(ruleSet, m).matched.length;
    return n;
  });

  const rnd = prng(3);
  const calendars = [berlinOffice, allHours, splitShift];
  const starts = Array.from(
    { length: DEADLINES },
    () => new Date(Date.UTC(2026, 0, 1) + Math.floor(rnd() * 360 * 86_400_000)),
  );
  const slaMinutes = [240, 1620, 60, 480];
  const deadlinesPerS = measure(DEADLINES, () => {
    let acc = 0;
    for (let i = 0; i < DEADLINES; i++) {
      const cal = calendars[i % 3] as BusinessCalendar;
      acc += addBusinessMinutes(cal, starts[i] as Date, slaMinutes[i & 3] as number).getTime();
    }
    return acc;
  });

  // Whole-policy deadlines: first response 4 h and resolution 3 business days, each with
  // its warning, i.e. four instants from one calendar walk per call.
  const policy = resolveSlaPolicy({ tenantDefault: { firstResponseMinutes: 240, resolutionMinutes: 1620 } });
  const policyCalls = DEADLINES / 4;
  const policyPerS = measure(policyCalls, () => {
    let acc = 0;
    for (let i = 0; i < policyCalls; i++) {
      const cal = calendars[i % 3] as BusinessCalendar;
      const d = slaDeadlines(startSlaClock(starts[i] as Date), policy, cal);
      acc += d.resolutionDueAt?.getTime() ?? 0;
    }
    return acc;
  });

  const baselinePerS = measure(DEADLINES, () => {
    let acc = 0;
    for (let i = 0; i < DEADLINES; i++) {
      const d = new Date((starts[i] as Date).getTime() + (slaMinutes[i & 3] as number) * 60_000);
      acc += d.getUTCHours() + d.getUTCDay();
    }
    return acc;
  });

  return {
    rule_msgs_per_s: Math.round(ruleMsgsPerS.wall),
    sla_deadlines_per_s: Math.round(deadlinesPerS.wall),
    sla_policy_calls_per_s: Math.round(policyPerS.wall),
    baseline_ops_per_s: Math.round(baselinePerS.wall),
    rule_msgs_to_baseline: Number((ruleMsgsPerS.wall / baselinePerS.wall).toFixed(6)),
    sla_deadlines_to_baseline: Number((deadlinesPerS.wall / baselinePerS.wall).toFixed(6)),
    rule_msgs_per_cpu_s: Math.round(ruleMsgsPerS.cpu),
    sla_deadlines_per_cpu_s: Math.round(deadlinesPerS.cpu),
    baseline_ops_per_cpu_s: Math.round(baselinePerS.cpu),
  };
}

// Run when started directly (`tsx bench/rules.ts`) or through the runner (`npm run bench -- rules`,
// where argv[1] is bench/run.ts); importing the module for its generators runs nothing.
const entry = process.argv[1] === undefined ? "" : pathToFileURL(process.argv[1]).href;
if (entry === import.meta.url || entry === new URL("./run.ts", import.meta.url).href) {
  const m = await run();
  const line = (label: string, wall: string, cpu: string | null, note = "") =>
    console.log(`${label}: ${m[wall]} /s wall${cpu === null ? "" : `, ${m[cpu]} /s CPU`}${note}`);
  line(
    `rules, ${RULES} rules x ${MESSAGES} messages`,
    "rule_msgs_per_s",
    "rule_msgs_per_cpu_s",
    " (target >= 5,000)",
  );
  line(
    "SLA deadlines (Berlin office / 24x7 / split shift)",
    "sla_deadlines_per_s",
    "sla_deadlines_per_cpu_s",
    " (target >= 100,000)",
  );
  line("slaDeadlines() calls, 4 instants each", "sla_policy_calls_per_s", null);
  line("baseline Date arithmetic loop", "baseline_ops_per_s", "baseline_ops_per_cpu_s");
  const load = os.loadavg()[0] ?? 0;
  console.log(
    `median of ${RUNS} runs after a warm-up; load average ${load.toFixed(1)} on ${os.availableParallelism()} CPUs`,
  );
  console.log(JSON.stringify({ bench: "rules", metrics: m }));
}

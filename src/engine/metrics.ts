import { monitorEventLoopDelay } from "node:perf_hooks";

/**
 * Process metrics in the Prometheus text format (`GET /metrics`, docs/operations in
 * docs/ingest.md "Metrics"). Counters live for the process; gauges are read at scrape
 * time from whoever registered them. No tenant labels: a scrape must not tell tenants
 * apart, and their number would make the series unbounded.
 */

type Labels = Record<string, string>;

class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = JSON.stringify(labels);
    const v = this.values.get(key);
    if (v) v.value += by;
    else this.values.set(key, { labels, value: by });
  }
  /** The value for exactly these labels (tests). */
  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(labels))?.value ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values())
      lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines;
  }
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${entries.map(([k, v]) => `${k}="${esc(v)}"`).join(",")}}`;
}

export const metrics = {
  /** Mail through ingest, by where it came from and what became of it. */
  ingested: new Counter(
    "switchboard_ingest_messages_total",
    "Mail through ingest by source (smtp, imap, api) and outcome (stored, duplicate, rejected, report).",
  ),
  /**
   * Timeline events this process wrote, by type: routing offers and assignments, sends and
   * failures, SLA warnings and breaches … (counted at the write; a transaction that rolls
   * back afterwards, which is rare, is counted all the same).
   */
  events: new Counter("switchboard_events_total", "Timeline events written by this process, by type."),
  /** What the inbound SMTP listener answered at the end of DATA. */
  smtpReplies: new Counter(
    "switchboard_smtp_data_replies_total",
    "Replies of the inbound SMTP listener at the end of DATA, by code (250, 451, 552).",
  ),
};

type Gauge = { name: string; help: string; read: () => number };
const gauges = new Map<string, Gauge>();

/** A value read at each scrape (the latest registration of a name wins). */
export function registerGauge(name: string, help: string, read: () => number): void {
  gauges.set(name, { name, help, read });
}

let loopDelay: ReturnType<typeof monitorEventLoopDelay> | null = null;

/** The whole exposition: counters, registered gauges, and the process's own figures. */
export function renderMetrics(): string {
  if (!loopDelay) {
    loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
  }
  const lines: string[] = [];
  for (const c of Object.values(metrics)) lines.push(...c.render());
  const gauge = (name: string, help: string, value: number) =>
    lines.push(
      `# HELP ${name} ${help}`,
      `# TYPE ${name} gauge`,
      `${name} ${Number.isFinite(value) ? value : 0}`,
    );
  for (const g of gauges.values()) gauge(g.name, g.help, g.read());
  gauge("process_resident_memory_bytes", "Resident memory of the process.", process.memoryUsage().rss);
  gauge(
    "nodejs_eventloop_delay_p99_seconds",
    "99th percentile of the event loop's delay since the previous scrape.",
    loopDelay.percentile(99) / 1e9,
  );
  loopDelay.reset();
  return `${lines.join("\n")}\n`;
}

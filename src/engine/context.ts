import type { Db } from "../db/client.js";
import type { Clock } from "./clock.js";
import type { AccountChecker } from "./connectivity.js";
import type { SecretBox } from "./crypto.js";
import type { EventHub } from "./event-hub.js";
import type { MimeParser } from "./ingest/parsed-mail.js";
import type { JobScheduler } from "./jobs.js";
import type { OutboundMail } from "./outbound/sender.js";

/** The subset of pino the engine uses, so the engine does not depend on a logger library. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

/**
 * After-commit signals the engine raises and the outer layers (jobs, connectors) act on.
 * Raised only after the transaction that caused them committed.
 */
export interface Signals {
  /**
   * Supply or demand changed in a queue: run routing for it. `"demand"` says only new work
   * arrived (ingest): while the queue's last pass found nobody who could take anything, a
   * demand signal is held for a moment (see routing/trigger.ts) — a new conversation cannot
   * create supply. Without a cause the pass runs at once.
   */
  routeQueue(tenantId: string, queueId: string, cause?: "demand"): void;
}

/** Everything an engine function needs besides its input: one per process. */
export interface EngineContext {
  db: Db;
  clock: Clock;
  secrets: SecretBox;
  log: Logger;
  signals: Signals;
  /** Committed events, live and replayable, for subscriptions and other consumers. */
  hub: EventHub;
  /** Durable timers and retried work (pg-boss behind an interface). */
  jobs: JobScheduler;
  /** Raw RFC 822 → ParsedMail, off the main thread (connectors/mime behind the interface). */
  mime: MimeParser;
  /** IMAP/SMTP connection checks (src/connectors); absent where no network access is wanted. */
  accountChecker?: AccountChecker;
  /** Outbound transport (SMTP behind an interface); absent in contexts that never send. */
  mail?: OutboundMail;
}

export const noSignals: Signals = { routeQueue: () => {} };

export const silentLogger: Logger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
  child: () => silentLogger,
};

/**
 * Connection checks of mail accounts. The engine declares what it needs; the IMAP/SMTP
 * libraries live in src/connectors and are handed in by the composition root (app.ts) as
 * `EngineContext.accountChecker`, so the engine never imports imapflow or nodemailer.
 */

/** Our own failure kinds, mapped from library/socket error codes by the connectors. */
export const CHECK_FAILURE_KINDS = ["AUTH", "CONNECTION", "TLS", "TIMEOUT", "MAILBOX", "PROTOCOL"] as const;
export type CheckFailureKind = (typeof CHECK_FAILURE_KINDS)[number];

export interface CheckResult {
  ok: boolean;
  /** Human-readable reason when not ok; never contains the password. */
  error: string | null;
  kind: CheckFailureKind | null;
}

export interface ImapCheckSettings {
  host: string;
  port: number;
  /** Implicit TLS (IMAPS); false = plain connection upgraded with STARTTLS when offered. */
  tls: boolean;
  user: string;
  password: string;
  mailbox: string;
}

export interface SmtpCheckSettings {
  host: string;
  port: number;
  tlsMode: "NONE" | "STARTTLS" | "TLS";
  user: string | null;
  password: string | null;
}

export interface AccountChecker {
  checkImap(settings: ImapCheckSettings, timeoutMs: number): Promise<CheckResult>;
  checkSmtp(settings: SmtpCheckSettings, timeoutMs: number): Promise<CheckResult>;
}

export const CHECK_OK: CheckResult = { ok: true, error: null, kind: null };

/**
 * A hard upper bound on a check, whatever the library's own timeouts do: a server that
 * accepts the TCP connection and then says nothing must not hang the mutation.
 */
export async function withDeadline(check: Promise<CheckResult>, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, error: `no answer within ${timeoutMs / 1000} s`, kind: "TIMEOUT" }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([check, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How a mail account's `last_error` begins when an IMAP login was refused: the connector's
 * own verdict, a connection test's. Such an account is parked (no login with that password
 * again until an edit or a VALID test; ingest/mailbox.ts `parkedAsInvalid`).
 */
export const REFUSED_IMAP_LOGIN = ["auth:", "IMAP: auth:"] as const;

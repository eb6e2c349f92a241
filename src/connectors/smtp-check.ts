import { createTransport } from "nodemailer";
import type { CheckFailureKind, CheckResult, SmtpCheckSettings } from "../engine/connectivity.js";
import { CHECK_OK, withDeadline } from "../engine/connectivity.js";

interface SmtpLikeError {
  code?: string;
  message?: string;
  responseCode?: number;
}

/** nodemailer (EAUTH, ECONNECTION, ETLS, …) and Node socket codes → our failure kinds. */
export function smtpFailureKind(err: SmtpLikeError): CheckFailureKind {
  const code = err.code ?? "";
  if (code === "EAUTH" || err.responseCode === 535) return "AUTH";
  if (/TIMEDOUT|TIMEOUT/i.test(code)) return "TIMEOUT";
  if (code === "ETLS" || /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_VERIFY)/.test(code))
    return "TLS";
  if (/^(ECONNECTION|ESOCKET|EDNS|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND)$/.test(code))
    return "CONNECTION";
  return "PROTOCOL";
}

/**
 * Connects, negotiates TLS as configured, authenticates when a user is set, and quits
 * (nodemailer `verify()`): no message is sent.
 */
export async function checkSmtp(s: SmtpCheckSettings, timeoutMs: number): Promise<CheckResult> {
  const transport = createTransport({
    host: s.host,
    port: s.port,
    secure: s.tlsMode === "TLS",
    requireTLS: s.tlsMode === "STARTTLS",
    // NONE means plain text on purpose (e.g. a local relay): never try to upgrade.
    ignoreTLS: s.tlsMode === "NONE",
    auth: s.user ? { user: s.user, pass: s.password ?? "" } : undefined,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    logger: false,
  });
  const run = async (): Promise<CheckResult> => {
    try {
      await transport.verify();
      return CHECK_OK;
    } catch (err) {
      const e = err as SmtpLikeError;
      const text = e.message ?? "unknown error";
      return { ok: false, error: e.code ? `${text} (${e.code})` : text, kind: smtpFailureKind(e) };
    }
  };
  try {
    return await withDeadline(run(), timeoutMs);
  } finally {
    transport.close();
  }
}

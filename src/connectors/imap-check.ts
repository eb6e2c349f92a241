import { ImapFlow } from "imapflow";
import type { CheckFailureKind, CheckResult, ImapCheckSettings } from "../engine/connectivity.js";
import { CHECK_OK, withDeadline } from "../engine/connectivity.js";

interface ImapLikeError {
  code?: string;
  message?: string;
  authenticationFailed?: boolean;
  responseText?: string;
  serverResponseCode?: string;
}

/** imapflow and Node socket/TLS error codes → our failure kinds. */
export function imapFailureKind(err: ImapLikeError): CheckFailureKind {
  if (err.authenticationFailed || err.serverResponseCode === "AUTHENTICATIONFAILED") return "AUTH";
  const code = err.code ?? "";
  if (/TIMEOUT|ETIMEDOUT/i.test(code)) return "TIMEOUT";
  if (
    /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_VERIFY)|STARTTLS|ClosedAfterConnectTLS/.test(
      code,
    )
  )
    return "TLS";
  if (
    /^E(CONNREFUSED|CONNRESET|HOSTUNREACH|NETUNREACH|NOTFOUND|AI_AGAIN|PIPE)$|NoConnection|EConnectionClosed/.test(
      code,
    )
  )
    return "CONNECTION";
  return "PROTOCOL";
}

function describe(err: ImapLikeError): string {
  const text = err.responseText || err.message || "unknown error";
  return err.code ? `${text} (${err.code})` : text;
}

/**
 * Logs in, looks at the configured mailbox and logs out: proves host, port, TLS,
 * credentials and mailbox name in one round, without touching any message.
 */
export async function checkImap(s: ImapCheckSettings, timeoutMs: number): Promise<CheckResult> {
  const client = new ImapFlow({
    host: s.host,
    port: s.port,
    secure: s.tls,
    auth: { user: s.user, pass: s.password },
    logger: false,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  });
  // imapflow emits 'error' on socket failures after connect(); without a listener Node would throw.
  client.on("error", () => {});
  const run = async (): Promise<CheckResult> => {
    try {
      await client.connect();
    } catch (err) {
      const e = err as ImapLikeError;
      return { ok: false, error: describe(e), kind: imapFailureKind(e) };
    }
    try {
      await client.status(s.mailbox, { messages: true });
      return CHECK_OK;
    } catch (err) {
      const e = err as ImapLikeError;
      const kind = e.code && e.code !== "NotFound" ? imapFailureKind(e) : "MAILBOX";
      return { ok: false, error: `mailbox ${JSON.stringify(s.mailbox)}: ${describe(e)}`, kind };
    } finally {
      await client.logout().catch(() => client.close());
    }
  };
  const result = await withDeadline(run(), timeoutMs);
  if (!result.ok && result.kind === "TIMEOUT") client.close();
  return result;
}

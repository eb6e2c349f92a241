import { describe, expect, it } from "vitest";
import {
  classifyImapError,
  describeImapError,
  ImapConnectorError,
} from "../../src/connectors/imap-errors.js";

function err(props: Record<string, unknown>, message = "boom"): Error {
  return Object.assign(new Error(message), props);
}

describe("classifyImapError", () => {
  it.each([
    // sockets and DNS
    [{ code: "ECONNREFUSED" }, "transient"],
    [{ code: "ECONNRESET" }, "transient"],
    [{ code: "ETIMEDOUT" }, "transient"],
    [{ code: "EHOSTUNREACH" }, "transient"],
    [{ code: "EAI_AGAIN" }, "transient"],
    [{ code: "ENOTFOUND" }, "permanent"],
    // TLS
    [{ code: "CERT_HAS_EXPIRED" }, "permanent"],
    [{ code: "DEPTH_ZERO_SELF_SIGNED_CERT" }, "permanent"],
    [{ code: "ERR_SSL_WRONG_VERSION_NUMBER" }, "permanent"],
    // imapflow connection state and timeouts
    [{ code: "NoConnection" }, "transient"],
    [{ code: "EConnectionClosed" }, "transient"],
    [{ code: "ClosedAfterConnectTLS" }, "transient"],
    [{ code: "CONNECT_TIMEOUT" }, "transient"],
    [{ code: "GREETING_TIMEOUT" }, "transient"],
    [{ code: "ETIMEOUT" }, "transient"],
    [{ code: "ETHROTTLE" }, "transient"],
    [{ code: "ParserError11" }, "transient"],
    // imapflow limits and misuse
    [{ code: "LiteralTooLarge" }, "permanent"],
    [{ code: "STARTTLS_INJECTION" }, "permanent"],
    [{ code: "NotFound" }, "permanent"],
    [{ code: "InvalidSequenceSet" }, "permanent"],
    // authentication
    [{ authenticationFailed: true }, "auth"],
    [{ authenticationFailed: true, serverResponseCode: "AUTHENTICATIONFAILED" }, "auth"],
    [{ authenticationFailed: true, serverResponseCode: "EXPIRED" }, "auth"],
    [{ authenticationFailed: true, serverResponseCode: "PRIVACYREQUIRED" }, "auth"],
    // RFC 5530: a failed LOGIN because the backend is down is not a password problem
    [{ authenticationFailed: true, serverResponseCode: "UNAVAILABLE" }, "transient"],
    [{ responseStatus: "NO", serverResponseCode: "NONEXISTENT" }, "permanent"],
    [{ responseStatus: "NO", serverResponseCode: "OVERQUOTA" }, "permanent"],
    [{ responseStatus: "NO", serverResponseCode: "INUSE" }, "transient"],
    // bare NO/BAD
    [{ responseStatus: "BAD", responseText: "Error in IMAP command" }, "permanent"],
    [{ responseStatus: "NO", responseText: "Server busy, try again later" }, "transient"],
    [{ responseStatus: "NO", responseText: "Mailbox doesn't exist: Nope" }, "permanent"],
    // unknown → transient
    [{}, "transient"],
    [{ code: "SOMETHING_NEW" }, "transient"],
  ] as const)("%j → %s", (props, kind) => {
    expect(classifyImapError(err(props))).toBe(kind);
  });

  it("handles non-Error values", () => {
    expect(classifyImapError("oops")).toBe("transient");
    expect(classifyImapError(null)).toBe("transient");
    expect(describeImapError("oops").message).toBe("oops");
  });

  it("looks inside cause chains and AggregateError", () => {
    const wrapped = new Error("connect failed", { cause: err({ code: "ENOTFOUND" }) });
    expect(describeImapError(wrapped)).toMatchObject({ kind: "permanent", code: "ENOTFOUND" });
    const agg = new AggregateError(
      [err({ code: "ECONNREFUSED" }), err({ code: "ECONNREFUSED" })],
      "all failed",
    );
    expect(describeImapError(agg)).toMatchObject({ kind: "transient", code: "ECONNREFUSED" });
  });

  it("reports the server's text and the deciding code", () => {
    const info = describeImapError(
      err({
        authenticationFailed: true,
        serverResponseCode: "AUTHENTICATIONFAILED",
        responseText: "Invalid credentials",
      }),
    );
    expect(info).toEqual({ kind: "auth", code: "AUTHENTICATIONFAILED", message: "Invalid credentials" });
  });

  it("wraps into ImapConnectorError once", () => {
    const cause = err({ code: "ECONNREFUSED" }, "connect ECONNREFUSED 127.0.0.1:1");
    const e = ImapConnectorError.from(cause);
    expect(e).toBeInstanceOf(ImapConnectorError);
    expect(e.kind).toBe("transient");
    expect(e.cause).toBe(cause);
    expect(ImapConnectorError.from(e)).toBe(e);
  });
});

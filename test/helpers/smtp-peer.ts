import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

/** An in-process SMTP server on 127.0.0.1 (ephemeral port), plain text, accepting one user. */
export async function startSmtpPeer(creds: { user: string; pass: string }): Promise<{
  port: number;
  logins: string[];
  stop(): Promise<void>;
}> {
  const logins: string[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ["STARTTLS"],
    // Plain-text AUTH on loopback only; real accounts use STARTTLS or TLS.
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, cb) {
      logins.push(auth.username ?? "");
      if (auth.username === creds.user && auth.password === creds.pass)
        return cb(null, { user: auth.username });
      return cb(new Error("Invalid username or password"));
    },
  });
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  return { port, logins, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

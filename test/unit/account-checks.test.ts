import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { checkImap } from "../../src/connectors/imap-check.js";
import { checkSmtp } from "../../src/connectors/smtp-check.js";

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A loopback TCP server driven by `onLine`; returns its port. */
async function tcp(greeting: string | null, onLine: (line: string, reply: (s: string) => void) => void) {
  const server = createServer((sock) => {
    sockets.push(sock);
    const reply = (s: string) => sock.write(`${s}\r\n`);
    if (greeting) reply(greeting);
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        onLine(line, reply);
      }
    });
    sock.on("error", () => {});
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as { port: number }).port;
}

const imap = (port: number) => ({
  host: "127.0.0.1",
  port,
  tls: false,
  user: "agent",
  password: "Secret-Pa55",
  mailbox: "INBOX",
});

describe("IMAP check", () => {
  it("reports refused credentials as AUTH without echoing the password", async () => {
    // Minimal IMAP4rev1 peer: capability without STARTTLS, every LOGIN refused (RFC 5530 code).
    const port = await tcp("* OK [CAPABILITY IMAP4rev1] ready", (line, reply) => {
      const [tag, cmd] = line.split(" ");
      if (/^CAPABILITY$/i.test(cmd ?? "")) {
        reply("* CAPABILITY IMAP4rev1");
        reply(`${tag} OK done`);
      } else if (/^LOGIN$/i.test(cmd ?? "")) reply(`${tag} NO [AUTHENTICATIONFAILED] Invalid credentials`);
      else if (/^LOGOUT$/i.test(cmd ?? "")) {
        reply("* BYE");
        reply(`${tag} OK bye`);
      } else reply(`${tag} BAD unsupported`);
    });
    const r = await checkImap(imap(port), 5_000);
    expect(r.ok).toBe(false);
    expect(r.kind).toBe("AUTH");
    expect(r.error).not.toContain("Secret-Pa55");
  });

  it("gives up on a silent server within the timeout", async () => {
    const port = await tcp(null, () => {});
    const started = Date.now();
    const r = await checkImap(imap(port), 300);
    expect(r).toMatchObject({ ok: false, kind: "TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe("SMTP check", () => {
  it("gives up on a silent server within the timeout", async () => {
    const port = await tcp(null, () => {});
    const started = Date.now();
    const r = await checkSmtp({ host: "127.0.0.1", port, tlsMode: "NONE", user: null, password: null }, 300);
    expect(r).toMatchObject({ ok: false, kind: "TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("refuses to go on in plain text when STARTTLS is required but not offered", async () => {
    const port = await tcp("220 peer ESMTP", (line, reply) => {
      if (/^EHLO/i.test(line)) reply("250 peer");
      else if (/^QUIT/i.test(line)) reply("221 bye");
      else reply("502 no");
    });
    const r = await checkSmtp(
      { host: "127.0.0.1", port, tlsMode: "STARTTLS", user: "u", password: "p" },
      5_000,
    );
    expect(r.ok).toBe(false);
    expect(r.kind).toBe("TLS");
  });
});

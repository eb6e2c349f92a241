import type { ChildProcess } from "node:child_process";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ImapFlow } from "imapflow";

/**
 * A throwaway Dovecot IMAP server for integration tests (STYLE.md §14: a real IMAP
 * server). Debian's `dovecot` binary runs in the foreground with a generated config:
 * loopback only, an ephemeral port, plaintext auth, one passwd-file user, maildir and
 * every runtime path (base_dir, state_dir, logs) inside a temp dir. No system service
 * or system config is touched. CI needs: `apt-get install -y dovecot-imapd`.
 */

const DOVECOT = "/usr/sbin/dovecot";
const DOVEADM = "/usr/bin/doveadm";
const run = promisify(execFile);

export interface AppendResult {
  uid: number;
  uidValidity: number;
}

export interface DovecotInstance {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The temp dir holding config, runtime state, logs and mail. */
  root: string;
  /**
   * IMAP APPEND as the test user; creates the mailbox first when needed. `internalDate`:
   * the INTERNALDATE the server records (when the mail "arrived"), default now.
   */
  appendMessage(raw: Buffer | string, mailbox?: string, internalDate?: Date): Promise<AppendResult>;
  /** Current UIDVALIDITY of a mailbox (IMAP STATUS). */
  uidValidity(mailbox?: string): Promise<number>;
  /** Forces a new UIDVALIDITY (doveadm mailbox update), keeping messages and UIDs. */
  setUidValidity(mailbox: string, n: number): Promise<void>;
  /**
   * What a server restore or a lost index looks like to a client: the mailbox's UID list
   * and indexes are dropped, so Dovecot renumbers the messages from 1 under a new
   * UIDVALIDITY. Call it while no client has the mailbox selected.
   */
  recreateMailbox(mailbox?: string): Promise<void>;
  /**
   * Drops every IMAP session of the test user from the server side (`doveadm kick`: the
   * session's imap process says BYE and exits), as a server restart or an admin's kick
   * looks to a client. The server keeps accepting new logins.
   */
  kick(): Promise<void>;
  /** An imapflow client for this server (not connected yet). */
  client(): ImapFlow;
  /** Dovecot's own log, for diagnosing a failing test. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

export function dovecotAvailable(): boolean {
  return existsSync(DOVECOT) && existsSync(DOVEADM);
}

/**
 * Skip-or-fail policy for tests that need Dovecot. Returns true when it is there.
 * Missing on a developer machine: tests are skipped with a loud warning. Missing with
 * CI=true: throws, so a CI image without it fails instead of silently testing less.
 */
export function requireDovecot(): boolean {
  if (dovecotAvailable()) return true;
  const msg =
    `Dovecot not found (${DOVECOT}). IMAP integration tests need it: ` +
    "apt-get update && apt-get install -y dovecot-imapd";
  if (process.env.CI === "true") throw new Error(`${msg} — required when CI=true`);
  console.warn(`\n${"!".repeat(78)}\n!! SKIPPING IMAP TESTS: ${msg}\n${"!".repeat(78)}\n`);
  return false;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function idsOf(name: string): Promise<{ uid: number; gid: number } | null> {
  try {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
      run("id", ["-u", name]),
      run("id", ["-g", name]),
    ]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  } catch {
    return null;
  }
}

/** Who Dovecot's processes run as: its own users under root, else the current user. */
async function accounts(): Promise<{ internal: string; login: string; mail: { uid: number; gid: number } }> {
  const me = userInfo();
  if (me.uid !== 0) return { internal: me.username, login: me.username, mail: { uid: me.uid, gid: me.gid } };
  // Dovecot refuses to run mail processes as root (first_valid_uid), so mail is owned by
  // the `dovecot` user that Debian's package creates; logins run as `dovenull`.
  const dovecot = await idsOf("dovecot");
  const dovenull = await idsOf("dovenull");
  if (!dovecot || !dovenull)
    throw new Error(
      "running as root needs the 'dovecot' and 'dovenull' users (Debian's package creates them)",
    );
  return { internal: "dovecot", login: "dovenull", mail: dovecot };
}

function config(root: string, port: number, acc: Awaited<ReturnType<typeof accounts>>): string {
  return `# generated by test/helpers/dovecot.ts
instance_name = switchboard-test-${port}
base_dir = ${root}/run
state_dir = ${root}/state
log_path = ${root}/dovecot.log
info_log_path = ${root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = ${acc.internal}
default_login_user = ${acc.login}
first_valid_uid = ${acc.mail.uid}
mail_uid = ${acc.mail.uid}
mail_gid = ${acc.mail.gid}
mail_location = maildir:${root}/mail/%u
# Every test account logs in as the same user from 127.0.0.1; a connector started by a
# test runs one connection per account, so Dovecot's default of 10 is too few here.
protocol imap {
  mail_max_userip_connections = 200
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${root}/users
}
userdb {
  driver = static
  args = uid=${acc.mail.uid} gid=${acc.mail.gid} home=${root}/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`;
}

/** Polls until the server greets and accepts our login, or the process dies. */
async function waitReady(
  port: number,
  user: string,
  password: string,
  child: ChildProcess,
  deadline: number,
): Promise<void> {
  let lastError = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`dovecot exited early (${child.exitCode ?? child.signalCode})`);
    try {
      await new Promise<void>((resolve, reject) => {
        const sock = new Socket();
        let buf = "";
        let sent = false;
        const done = (err?: Error): void => {
          sock.destroy();
          if (err) reject(err);
          else resolve();
        };
        sock.setTimeout(2000, () => done(new Error("probe timeout")));
        sock.on("error", (e) => done(e));
        sock.on("data", (d) => {
          buf += d.toString("latin1");
          if (!sent && /\bready\b/i.test(buf)) {
            sent = true;
            sock.write(`p LOGIN "${user}" "${password}"\r\np2 LOGOUT\r\n`);
          }
          if (/^p OK/m.test(buf)) done();
          else if (/^p (NO|BAD)/m.test(buf)) done(new Error(buf.trim()));
        });
        sock.connect(port, "127.0.0.1");
      });
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`dovecot not ready on port ${port}: ${lastError}`);
}

/** Maildir++ folder of a mailbox: INBOX is the root, "Foo" is ".Foo". */
function maildirOf(root: string, user: string, mailbox: string): string {
  const base = join(root, "mail", user);
  return mailbox.toUpperCase() === "INBOX" ? base : join(base, `.${mailbox.replace(/\//g, ".")}`);
}

export async function startDovecot(): Promise<DovecotInstance> {
  if (!dovecotAvailable()) throw new Error(`dovecot is not installed (${DOVECOT})`);
  const acc = await accounts();
  const user = "agent";
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const root = await mkdtemp(join(tmpdir(), "sb-dovecot-"));
  // The mail processes run as another user under root: they must reach the mail dir.
  await chmod(root, 0o755);
  await Promise.all(["run", "state", "mail"].map((d) => mkdir(join(root, d))));
  if (userInfo().uid === 0) await chown(join(root, "mail"), acc.mail.uid, acc.mail.gid);
  // passwd-file: user:{scheme}password:uid:gid:gecos:home:shell:extra
  await writeFile(join(root, "users"), `${user}:{PLAIN}${password}::::::\n`, { mode: 0o644 });
  const confPath = join(root, "dovecot.conf");

  let child: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    await writeFile(confPath, config(root, port, acc));
    const proc = spawn(DOVECOT, ["-F", "-c", confPath], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    proc.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    proc.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    try {
      await waitReady(port, user, password, proc, Date.now() + 15_000);
      child = proc;
      break;
    } catch (err) {
      proc.kill("SIGKILL");
      const log = await readFile(join(root, "dovecot.log"), "utf8").catch(() => "");
      // Another process may have taken the port between freePort() and bind: retry.
      if (attempt < 3 && /Address already in use/i.test(output + log)) continue;
      await rm(root, { recursive: true, force: true });
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${output}\n${log}`);
    }
  }
  const proc = child;
  // Never leave a server behind if the test process dies without calling stop().
  const killOnExit = (): void => {
    proc.kill("SIGKILL");
  };
  process.once("exit", killOnExit);

  const client = (): ImapFlow =>
    new ImapFlow({ host: "127.0.0.1", port, secure: false, auth: { user, pass: password }, logger: false });

  const withClient = async <T>(fn: (c: ImapFlow) => Promise<T>): Promise<T> => {
    const c = client();
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.logout().catch(() => c.close());
    }
  };

  const doveadm = async (args: string[]): Promise<string> => {
    const { stdout } = await run(DOVEADM, ["-c", confPath, ...args]);
    return stdout;
  };

  let stopped = false;
  return {
    host: "127.0.0.1",
    port,
    user,
    password,
    root,

    appendMessage: (raw, mailbox = "INBOX", internalDate) =>
      withClient(async (c) => {
        if (mailbox.toUpperCase() !== "INBOX") {
          const exists = (await c.list()).some((m) => m.path === mailbox);
          if (!exists) await c.mailboxCreate(mailbox);
        }
        const res = await c.append(
          mailbox,
          typeof raw === "string" ? Buffer.from(raw) : raw,
          [],
          internalDate,
        );
        if (!res || typeof res.uid !== "number" || typeof res.uidValidity !== "bigint") {
          throw new Error("APPEND did not return APPENDUID (RFC 4315)");
        }
        return { uid: res.uid, uidValidity: Number(res.uidValidity) };
      }),

    uidValidity: (mailbox = "INBOX") =>
      withClient(async (c) => {
        const status = await c.status(mailbox, { uidValidity: true });
        if (!status || status.uidValidity === undefined) throw new Error(`no STATUS for ${mailbox}`);
        return Number(status.uidValidity);
      }),

    async setUidValidity(mailbox, n) {
      await doveadm(["mailbox", "update", "-u", user, "--uid-validity", String(n), mailbox]);
    },

    async recreateMailbox(mailbox = "INBOX") {
      const dir = maildirOf(root, user, mailbox);
      for (const f of await readdir(dir)) {
        // The UID list and the mailbox indexes; the messages (cur/new) and the list-wide
        // UIDVALIDITY counter stay, so the next UIDVALIDITY is guaranteed to differ.
        if (f === "dovecot-uidlist" || /^dovecot\.index/.test(f)) await rm(join(dir, f), { force: true });
      }
    },

    async kick() {
      await doveadm(["kick", user]);
    },

    client,

    log: () => readFile(join(root, "dovecot.log"), "utf8").catch(() => ""),

    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener("exit", killOnExit);
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

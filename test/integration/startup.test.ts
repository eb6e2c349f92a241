import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { freePort } from "../global-setup.js";

/**
 * The README's `npm start` path for real: a child process with the embedded PostgreSQL in
 * a fresh data folder, bootstrapping on the empty database, stopped by SIGTERM, started
 * again on the existing data.
 */
const dataDir = mkdtempSync(join(tmpdir(), "switchboard-start-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function start(
  port: number,
  pgPort: number,
  readyText = "Switchboard is listening",
): { child: ChildProcess; output: () => string; ready: Promise<void> } {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: process.cwd(),
    env: {
      ...process.env,
      DATABASE_URL: "",
      DATA_DIR: dataDir,
      PORT: String(port),
      EMBEDDED_PG_PORT: String(pgPort),
      SMTP_ENABLED: "false",
      LOG_LEVEL: "info",
      NODE_ENV: "development",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => {
    out += d;
  });
  child.stderr!.on("data", (d) => {
    out += d;
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes(readyText)) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`server exited early (${code}): ${out}`));
    });
  });
  return { child, output: () => out, ready };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGTERM");
  return exited;
}

async function viewer(port: number, key: string) {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: "{ viewer { role tenant { name } } }" }),
  });
  return res.json() as Promise<{ data?: { viewer: { role: string; tenant: { name: string } } } }>;
}

describe("npm start", () => {
  it("bootstraps an empty embedded database, stops cleanly, and restarts on the existing data", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const pgPort = await freePort();
    // The key is printed after the server listens: wait for it, not just for "listening".
    const first = start(port, pgPort, "Admin API key");
    await first.ready;
    const key = /Admin API key \(shown once, keep it\): (sb_\S+)/.exec(first.output())?.[1];
    expect(key).toBeDefined();
    expect((await viewer(port, key!)).data?.viewer).toEqual({ role: "ADMIN", tenant: { name: "Default" } });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect(await stop(first.child)).toBe(0);
    // Graceful stop took the embedded PostgreSQL down with it: its port is free again.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

    const second = start(port, pgPort);
    await second.ready;
    expect(second.output()).not.toContain("Admin API key");
    expect((await viewer(port, key!)).data?.viewer.role).toBe("ADMIN");
    expect(await stop(second.child)).toBe(0);
  });
});

describe("configuration", () => {
  it("reports every bad setting at once", () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: "70000",
        LOG_LEVEL: "loud",
        DATABASE_URL: "mysql://x",
        SECRET_KEY: "short",
        GRAPHQL_INTROSPECTION: "maybe",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join("\n");
    for (const name of ["PORT", "LOG_LEVEL", "DATABASE_URL", "SECRET_KEY", "GRAPHQL_INTROSPECTION"]) {
      expect(problems).toContain(name);
    }
  });

  it("refuses an SMTP memory budget that could not hold one message of the size limit", () => {
    expect(() =>
      loadConfig({ MAX_MESSAGE_BYTES: String(40 * 1024 * 1024), SMTP_MAX_BUFFERED_MB: "16" }),
    ).toThrow(/SMTP_MAX_BUFFERED_MB must hold at least one message of MAX_MESSAGE_BYTES/);
    const ok = loadConfig({ MAX_MESSAGE_BYTES: String(10 * 1024 * 1024), SMTP_MAX_BUFFERED_MB: "16" });
    expect(ok.smtpListen.maxBufferedBytes).toBe(16 * 1024 * 1024);
    expect(ok.smtpListen).toMatchObject({
      maxClientsPerIp: 20,
      dataTimeoutMs: 600_000,
      sessionTimeoutMs: 1_800_000,
    });
  });

  it("requires SECRET_KEY in production with an external database", () => {
    expect(() => loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgres://db/x" })).toThrow(
      /SECRET_KEY/,
    );
    const ok = loadConfig({
      NODE_ENV: "production",
      DATABASE_URL: "postgres://db/x",
      SECRET_KEY: "ab".repeat(32),
    });
    expect(ok.graphql.introspection).toBe(false);
    expect(ok.secretKey.length).toBe(32);
  });
});

import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";
import { type Switchboard, startSwitchboard } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import type { Clock } from "../../src/engine/clock.js";
import { silentLogger } from "../../src/engine/context.js";
import type { Viewer } from "../../src/engine/viewer.js";
import { createTestDatabase, type TestDatabase } from "./db.js";

export interface GqlResponse<T = Record<string, unknown>> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export interface TestApp {
  app: Switchboard;
  db: TestDatabase;
  url: string;
  wsUrl: string;
  tenantId: string;
  adminId: string;
  adminKey: string;
  /** POSTs a GraphQL operation with the given key (default: the admin's). */
  gql<T = Record<string, any>>(
    query: string,
    variables?: Record<string, unknown>,
    key?: string | null,
    operationName?: string,
  ): Promise<GqlResponse<T>>;
  /** Like gql but fails the test on any GraphQL error and returns data. */
  ok<T = Record<string, any>>(
    query: string,
    variables?: Record<string, unknown>,
    key?: string | null,
  ): Promise<T>;
  ws(key: string | null): Client;
  /** The tenant admin as the engine's functions take a caller (no API key involved). */
  adminViewer(): Viewer;
  stop(): Promise<void>;
}

/** A real server (HTTP + graphql-ws) on an ephemeral loopback port over a fresh database. */
export async function startTestApp(
  opts: {
    clock?: Clock;
    env?: Record<string, string>;
    onQuery?: (query: string, params: readonly unknown[]) => void;
  } = {},
): Promise<TestApp> {
  const db = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: "test",
    DATABASE_URL: db.url,
    PORT: "0",
    HOST: "127.0.0.1",
    SMTP_ENABLED: "false",
    IMAP_ENABLED: "false",
    BOOTSTRAP: "false",
    SECRET_KEY: "11".repeat(32),
    LOG_LEVEL: "silent",
    ...opts.env,
  });
  const app = await startSwitchboard(config, { clock: opts.clock, log: silentLogger, onQuery: opts.onQuery });
  const admin = await createTenantWithAdmin(db.db, { tenantName: "Acme", adminEmail: "admin@acme.test" });
  const clients: Client[] = [];
  const gql: TestApp["gql"] = async (query, variables, key, operationName) => {
    const k = key === undefined ? admin.apiKey : key;
    const res = await fetch(app.http.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(k ? { authorization: `Bearer ${k}` } : {}) },
      body: JSON.stringify({ query, variables, operationName }),
    });
    return (await res.json()) as GqlResponse<never>;
  };
  return {
    app,
    db,
    url: app.http.url,
    wsUrl: app.http.wsUrl,
    tenantId: admin.tenantId,
    adminId: admin.userId,
    adminKey: admin.apiKey,
    gql,
    async ok(query, variables, key) {
      const r = await gql(query, variables, key);
      if (r.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
      return r.data as never;
    },
    adminViewer: () => ({
      tenantId: admin.tenantId,
      userId: admin.userId,
      role: "ADMIN",
      permissions: new Set(),
      queueIds: null,
    }),
    ws(key) {
      const client = createClient({
        url: app.http.wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: key ? { authorization: `Bearer ${key}` } : {},
        retryAttempts: 0,
        lazy: true,
      });
      clients.push(client);
      return client;
    },
    async stop() {
      for (const c of clients) await c.dispose();
      await app.stop();
      await db.drop();
    },
  };
}

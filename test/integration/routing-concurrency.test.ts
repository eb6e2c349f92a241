import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { contact, queueMember } from "../../src/db/schema/index.js";
import { releaseConversation } from "../../src/engine/routing/actions.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";

/**
 * Concurrency proof (issue #4): two server processes on one database, 200 agents spanning
 * two queues (one with offers), 5,000 conversations, 50 clients accepting, rejecting,
 * parking, activating, returning and resolving at random against both servers.
 */
const AGENTS = 200;
const CONVERSATIONS = 5_000;
const CLIENTS = 50;
const INBOX_LIMIT = 3;
const RUN_MS = 20_000;

let t: TestApp;
let child: ChildProcess;
let urlB: string;

beforeAll(async () => {
  t = await startTestApp();
  const script = fileURLToPath(new URL("./routing-second-server.ts", import.meta.url));
  child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, DATABASE_URL: t.db.url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  urlB = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /READY (\S+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`second server exited with ${code}`)));
  });
}, 60_000);

afterAll(async () => {
  child?.kill("SIGTERM");
  await new Promise((r) => child?.once("exit", r));
  await t?.stop();
});

async function gqlAt(url: string, key: string, query: string, variables: Record<string, unknown>) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: Record<string, { __typename: string }>; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return Object.values(body.data!)[0]!.__typename;
}

it("two processes, 200 agents, 5,000 conversations, 50 clients: one owner, never over capacity, no lost offer", async () => {
  const db = t.db.db;
  const offers = await createQueueWithAddress(db, t.tenantId, {
    queue: { offerRequired: true, offerTimeoutSeconds: 2, autoParking: true, autoParkSpacingSeconds: 0 },
  });
  const direct = await createQueueWithAddress(db, t.tenantId, {
    queue: { autoParking: true, autoParkSpacingSeconds: 0 },
  });
  const agents: { id: string; key: string }[] = [];
  for (let i = 0; i < AGENTS; i++) {
    agents.push(
      await createUserWithKey(db, t.tenantId, "AGENT", {
        presence: "AVAILABLE",
        loggedIn: true,
        inboxLimit: INBOX_LIMIT,
      }),
    );
  }
  await db.insert(queueMember).values(
    agents.flatMap((a) => [
      { tenantId: t.tenantId, queueId: offers.queueId, userId: a.id },
      { tenantId: t.tenantId, queueId: direct.queueId, userId: a.id },
    ]),
  );
  const [ct] = await db
    .insert(contact)
    .values({ tenantId: t.tenantId, email: "load@example.com" })
    .returning();
  await db.execute(sql`
    INSERT INTO conversation (tenant_id, ticket_number, contact_id, queue_id, priority, work_state, enqueued_at,
                              received_at, last_activity_at, status_changed_at)
    SELECT ${t.tenantId}, 900000 + g, ${ct!.id}, CASE WHEN g % 2 = 0 THEN ${offers.queueId}::uuid ELSE ${direct.queueId}::uuid END,
           g % 3, 'WAITING', now() - (g || ' seconds')::interval, now(), now(), now()
    FROM generate_series(1, ${CONVERSATIONS}) g`);

  // Capacity sampler: one statement = one consistent snapshot of every agent's load.
  const violations: unknown[] = [];
  let sampling = true;
  let samples = 0;
  const sampler = (async () => {
    while (sampling) {
      const rows = await db.execute<{ agent: string; load: number; active: number }>(sql`
        SELECT coalesce(assignee_id, offered_to_id) AS agent, count(*)::int AS load,
               count(*) FILTER (WHERE work_state = 'ACTIVE')::int AS active
        FROM conversation WHERE work_state IN ('ACTIVE', 'PARKED', 'OFFERED')
        GROUP BY 1 HAVING count(*) > ${INBOX_LIMIT} OR count(*) FILTER (WHERE work_state = 'ACTIVE') > 1`);
      samples++;
      if (rows.length > 0) violations.push(...rows);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  const urls = [t.url, urlB];
  const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
  const stats = { actions: 0, conflicts: 0, resolved: 0, accepted: 0, rejected: 0 };
  const deadline = Date.now() + RUN_MS;
  const M = (name: string) => `mutation($id: ID!) { ${name}(conversationId: $id) { __typename } }`;

  const client = async (mine: { id: string; key: string }[]) => {
    // Presence changes route the agent's queues on whichever server took the request.
    await gqlAt(pick(urls), mine[0]!.key, `mutation { setPresence(presence: AVAILABLE) { __typename } }`, {});
    while (Date.now() < deadline) {
      const a = pick(mine);
      const own = await db.execute<{ id: string; work_state: string }>(sql`
        SELECT id, work_state FROM conversation WHERE assignee_id = ${a.id} OR offered_to_id = ${a.id}`);
      if (own.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const c = pick([...own]);
      const id = encodeId("Conversation", c.id);
      const url = pick(urls);
      const r = Math.random();
      let name: string | null = null;
      if (c.work_state === "OFFERED") {
        // Some offers are left to time out (2 s).
        if (r < 0.5) name = "acceptOffer";
        else if (r < 0.8) name = "rejectOffer";
      } else if (r < 0.3) {
        name = c.work_state === "ACTIVE" ? "parkConversation" : "activateConversation";
      } else if (r < 0.4) {
        name = "returnConversationToQueue";
      } else if (r < 0.7) {
        // Resolve, as lifecycle would: release in a transaction, route after commit.
        const out = await t.app.engine.db.transaction((tx) =>
          releaseConversation(tx, t.app.engine, c.id, "RESOLVED"),
        );
        for (const q of out.queueIds) t.app.engine.signals.routeQueue(t.tenantId, q);
        if (out.agentId) stats.resolved++;
        stats.actions++;
        continue;
      }
      if (!name) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      const typename = await gqlAt(url, a.key, M(name), { id });
      stats.actions++;
      if (typename === "ConflictError") stats.conflicts++;
      else if (name === "acceptOffer") stats.accepted++;
      else if (name === "rejectOffer") stats.rejected++;
    }
  };
  const groups = Array.from({ length: CLIENTS }, (_, i) => agents.filter((_a, j) => j % CLIENTS === i));
  await Promise.all(groups.map(client));
  // Let in-flight passes and offer timeouts (pg-boss, wall clock) settle.
  await t.app.routing.idle();
  await new Promise((r) => setTimeout(r, 4_000));
  await t.app.routing.idle();
  sampling = false;
  await sampler;

  expect(samples).toBeGreaterThan(50);
  expect(violations).toEqual([]);
  // The shared 2-core machine decides the pace; the invariants are the point.
  expect(stats.actions).toBeGreaterThan(100);
  expect(stats.accepted, JSON.stringify(stats)).toBeGreaterThan(0);
  expect(stats.rejected, JSON.stringify(stats)).toBeGreaterThan(0);

  // Every conversation is in a consistent routing position.
  const bad = await db.execute(sql`
    SELECT id, work_state, assignee_id, offered_to_id FROM conversation WHERE NOT (
      (work_state = 'WAITING' AND assignee_id IS NULL AND offered_to_id IS NULL) OR
      (work_state = 'OFFERED' AND assignee_id IS NULL AND offered_to_id IS NOT NULL) OR
      (work_state IN ('ACTIVE', 'PARKED') AND assignee_id IS NOT NULL AND offered_to_id IS NULL) OR
      (work_state = 'DONE' AND assignee_id IS NULL AND offered_to_id IS NULL))`);
  expect(bad).toEqual([]);
  const [{ done }] = (await db.execute<{ done: number }>(
    sql`SELECT count(*)::int AS done FROM conversation WHERE work_state = 'DONE'`,
  )) as unknown as [{ done: number }];
  expect(done).toBe(stats.resolved);

  // From the event log: ownership never overlaps, and every offer ended exactly once
  // (accepted, rejected, expired) or is still pending — none lost.
  const events = await db.execute<{ conversation_id: string; type: string; agent_id: string | null }>(sql`
    SELECT conversation_id, type, agent_id FROM event
    WHERE conversation_id IS NOT NULL AND type LIKE 'routing.%' ORDER BY conversation_id, id`);
  const owner = new Map<string, string | null>();
  const pendingOffer = new Map<string, string | null>();
  const overlaps: string[] = [];
  const lostOffers: string[] = [];
  for (const e of events) {
    const c = e.conversation_id;
    switch (e.type) {
      case "routing.assigned":
      case "routing.accepted":
        if (owner.get(c)) overlaps.push(c);
        if (e.type === "routing.accepted" && pendingOffer.get(c) !== e.agent_id) lostOffers.push(c);
        pendingOffer.set(c, null);
        owner.set(c, e.agent_id);
        break;
      case "routing.offered":
        if (owner.get(c) || pendingOffer.get(c)) overlaps.push(c);
        pendingOffer.set(c, e.agent_id);
        break;
      case "routing.rejected":
      case "routing.offer_expired":
        if (pendingOffer.get(c) !== e.agent_id) lostOffers.push(c);
        pendingOffer.set(c, null);
        break;
      case "routing.unassigned":
        owner.set(c, null);
        pendingOffer.set(c, null);
        break;
    }
  }
  expect(overlaps).toEqual([]);
  expect(lostOffers).toEqual([]);
  const offered = await db.execute<{ id: string; offered_to_id: string }>(
    sql`SELECT id, offered_to_id FROM conversation WHERE work_state = 'OFFERED'`,
  );
  for (const o of offered) expect(pendingOffer.get(o.id)).toBe(o.offered_to_id);
  // Nothing stays offered past its timeout once the timers have fired.
  const [{ stale }] = (await db.execute<{ stale: number }>(sql`
    SELECT count(*)::int AS stale FROM conversation
    WHERE work_state = 'OFFERED' AND offer_expires_at < now() - interval '3 seconds'`)) as unknown as [
    { stale: number },
  ];
  expect(stale).toBe(0);
}, 120_000);

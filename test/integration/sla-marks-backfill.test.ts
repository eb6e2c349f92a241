import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rawClient } from "../../src/db/client.js";
import { MIGRATIONS_DIR } from "../../src/db/migrate.js";
import { startSlaClock } from "../../src/engine/time/sla.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";

// Migration 0007 backfills the queue marks of conversations stored before it. Its last
// statement is re-run here over rows shaped like the SLA service wrote them.
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

// A clock as the SLA service stores it (JSON: dates as ISO strings), started 1 January.
const started = JSON.parse(JSON.stringify(startSlaClock(new Date("2026-01-01T00:00:00.000Z"))));
const clock = (o: Record<string, unknown>) => ({ ...started, ...o });
const replied = { firstResponseClock: 5, firstResponseAt: "2026-01-01T00:05:00.000Z" };

it("backfills breach marks from the due columns and at-risk marks from announced warnings of pending targets", async () => {
  const q = await createQueueWithAddress(t.db.db, t.tenantId);
  const sql = rawClient(t.app.engine.db);
  const [c] =
    await sql`INSERT INTO contact (tenant_id, email) VALUES (${t.tenantId}, 'old@customer.example') RETURNING id`;
  const rows: { n: number; notified: string[]; clock: Record<string, unknown>; due: string | null }[] = [
    { n: 1, notified: [], clock: {}, due: "2026-01-01T01:00:00Z" },
    { n: 2, notified: ["FIRST_RESPONSE:0:warning"], clock: {}, due: "2026-01-01T01:00:00Z" },
    // Warned, then answered: nothing pending.
    { n: 3, notified: ["FIRST_RESPONSE:0:warning"], clock: replied, due: null },
    {
      n: 4,
      notified: ["NEXT_RESPONSE:2026-01-01T02:00:00.000Z:warning"],
      clock: { ...replied, awaitingReplySince: "2026-01-01T02:00:00.000Z", awaitingReplyClock: 9 },
      due: null,
    },
    // A warning of an earlier, answered next-response cycle does not count.
    {
      n: 5,
      notified: ["NEXT_RESPONSE:2026-01-01T02:00:00.000Z:warning"],
      clock: { ...replied, awaitingReplySince: "2026-01-02T02:00:00.000Z", awaitingReplyClock: 30 },
      due: null,
    },
    {
      n: 6,
      notified: ["RESOLUTION:0:warning"],
      clock: { runningSince: null, pauseReason: "RESOLVED" },
      due: null,
    },
    {
      n: 7,
      notified: ["RESOLUTION:0:warning"],
      clock: { runningSince: null, pauseReason: "PAUSED" },
      due: null,
    },
  ];
  for (const r of rows) {
    const state = { clock: clock(r.clock), source: "TENANT", notified: r.notified };
    await sql`INSERT INTO conversation (tenant_id, ticket_number, contact_id, queue_id, received_at,
        last_activity_at, status_changed_at, sla_policy_id, sla_state, first_response_due_at, created_at)
      VALUES (${t.tenantId}, ${r.n}, ${c!.id}, ${q.queueId}, now(), now(), now(), gen_random_uuid(),
        ${JSON.stringify(state)}::jsonb, ${r.due}::timestamptz, '2026-01-01T00:00:00Z')`;
  }
  const statements = readFileSync(`${MIGRATIONS_DIR}/0007_sla_queue_marks.sql`, "utf8").split(
    "--> statement-breakpoint",
  );
  await sql.unsafe(statements.at(-1)!);
  const out = await sql<{ n: string; risk: string | null; breach: string | null }[]>`
    SELECT ticket_number::text AS n, sla_at_risk_from::text AS risk, sla_breached_from::text AS breach
    FROM conversation WHERE queue_id = ${q.queueId} ORDER BY ticket_number`;
  expect(out.map((r) => [Number(r.n), r.risk !== null, r.breach])).toEqual([
    [1, false, "2026-01-01 01:00:00+00"],
    [2, true, "2026-01-01 01:00:00+00"],
    [3, false, null],
    [4, true, null],
    [5, false, null],
    [6, false, null],
    [7, true, null],
  ]);
});

import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../../src/db/client.js";
import {
  agentSkill,
  contact,
  conversation,
  event,
  type queue,
  queueMember,
  skill,
  team,
} from "../../src/db/schema/index.js";
import type { TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";

let ticket = 500_000;
let seq = 0;

export type QueueOpts = Partial<typeof queue.$inferInsert>;

/** A queue with `agents` AVAILABLE, logged-in agent members (direct members). */
export async function routingSetup(
  t: TestApp,
  opts: { queue?: QueueOpts; agents?: number; agentExtra?: Record<string, unknown> } = {},
) {
  const db = t.db.db;
  const q = await createQueueWithAddress(db, t.tenantId, { queue: opts.queue });
  const agents: { id: string; key: string }[] = [];
  for (let i = 0; i < (opts.agents ?? 2); i++) {
    const a = await createUserWithKey(db, t.tenantId, "AGENT", {
      presence: "AVAILABLE",
      loggedIn: true,
      ...opts.agentExtra,
    });
    await db.insert(queueMember).values({ tenantId: t.tenantId, queueId: q.queueId, userId: a.id });
    agents.push(a);
  }
  return { queueId: q.queueId, agents };
}

export async function addConversation(
  t: TestApp,
  queueId: string,
  opts: {
    priority?: number;
    enqueuedAt?: Date;
    requiredSkillIds?: string[];
    contactId?: string;
    preferredAgentId?: string | null;
  } = {},
): Promise<{ id: string; contactId: string }> {
  const db = t.db.db;
  const now = t.app.engine.clock.now();
  let contactId = opts.contactId;
  if (!contactId) {
    seq += 1;
    const [c] = await db
      .insert(contact)
      .values({
        tenantId: t.tenantId,
        email: `customer${seq}-${Math.random().toString(36).slice(2)}@example.com`,
        preferredAgentId: opts.preferredAgentId ?? null,
      })
      .returning({ id: contact.id });
    contactId = c!.id;
  }
  ticket += 1;
  const [row] = await db
    .insert(conversation)
    .values({
      tenantId: t.tenantId,
      ticketNumber: ticket,
      subject: `Ticket ${ticket}`,
      contactId,
      queueId,
      priority: opts.priority ?? 0,
      workState: "WAITING",
      enqueuedAt: opts.enqueuedAt ?? now,
      requiredSkillIds: opts.requiredSkillIds ?? [],
      receivedAt: now,
      lastActivityAt: now,
      statusChangedAt: now,
    })
    .returning({ id: conversation.id });
  return { id: row!.id, contactId };
}

/** Signals routing for the queue and waits until every pass (and follow-up) is done. */
export async function route(t: TestApp, queueId: string): Promise<void> {
  t.app.engine.signals.routeQueue(t.tenantId, queueId);
  await t.app.routing.idle();
}

export async function conv(db: Db, id: string) {
  const [row] = await db.select().from(conversation).where(eq(conversation.id, id));
  return row!;
}

export async function eventsOf(db: Db, conversationId: string) {
  return db.select().from(event).where(eq(event.conversationId, conversationId)).orderBy(event.id);
}

export async function ownedBy(db: Db, agentId: string) {
  return db
    .select()
    .from(conversation)
    .where(and(eq(conversation.assigneeId, agentId), sql`work_state IN ('ACTIVE','PARKED')`));
}

export async function createSkill(t: TestApp, name: string): Promise<string> {
  const [s] = await t.db.db
    .insert(skill)
    .values({ tenantId: t.tenantId, name: `${name}-${++seq}` })
    .returning({ id: skill.id });
  return s!.id;
}

export async function giveSkill(t: TestApp, userId: string, skillId: string, proficiency: number) {
  await t.db.db.insert(agentSkill).values({ tenantId: t.tenantId, userId, skillId, proficiency });
}

export async function createTeam(t: TestApp, extra: Partial<typeof team.$inferInsert> = {}) {
  const [row] = await t.db.db
    .insert(team)
    .values({ tenantId: t.tenantId, name: `Team ${++seq}`, ...extra })
    .returning({ id: team.id });
  return row!.id;
}

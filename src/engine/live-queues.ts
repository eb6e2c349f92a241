import { and, eq, inArray, isNull } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { emailAddress, queue } from "../db/schema/index.js";

/**
 * Putting work into a queue and archiving it, kept apart. Whatever puts a conversation into
 * a queue (ingest, a transfer, a new outbound conversation, a reopened one) reads the queue
 * here: live, and key-share locked until its transaction commits. `archiveQueue` locks the
 * row FOR UPDATE and then counts the queue's unfinished work: it waits for such a
 * transaction and is refused, and a transaction that comes while an archive is under way
 * waits for it and then finds the queue archived. (A conversation's insert key-shares its
 * queue for the foreign key anyway; this takes that lock at the read.) Until 2026-11-23 the
 * reads took no lock, and work committed into a queue archived in between waited where
 * routing never offers it (config probe and re-probes, session 17).
 */
export type QueueRow = typeof queue.$inferSelect;

/** The tenant's live queues among `ids`, by id, key-share locked. */
export async function liveQueues(tx: Tx, tenantId: string, ids: string[]): Promise<Map<string, QueueRow>> {
  const rows = await tx
    .select()
    .from(queue)
    .where(and(eq(queue.tenantId, tenantId), isNull(queue.archivedAt), inArray(queue.id, ids)))
    .for("key share");
  return new Map(rows.map((q) => [q.id, q]));
}

/** Whether a queue of the tenant is live, key-share locked. */
export async function isLiveQueue(tx: Tx, tenantId: string, id: string): Promise<boolean> {
  return (await liveQueues(tx, tenantId, [id])).has(id);
}

/** The live routing queue of an (unarchived) address, key-share locked; null for none. */
export async function addressLiveQueue(
  tx: Tx,
  tenantId: string,
  addressId: string | null,
): Promise<string | null> {
  if (!addressId) return null;
  const [a] = await tx
    .select({ queueId: emailAddress.queueId })
    .from(emailAddress)
    .where(
      and(
        eq(emailAddress.id, addressId),
        eq(emailAddress.tenantId, tenantId),
        isNull(emailAddress.archivedAt),
      ),
    );
  return a?.queueId && (await isLiveQueue(tx, tenantId, a.queueId)) ? a.queueId : null;
}

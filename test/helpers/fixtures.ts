import type { Db } from "../../src/db/client.js";
import { apiKey, emailAddress, queue, user } from "../../src/db/schema/index.js";
import { generateApiKey } from "../../src/engine/crypto.js";
import type { Role } from "../../src/engine/domain.js";

let seq = 0;

/** A user with an API key, written straight to the database (test setup, not under test). */
export async function createUserWithKey(
  db: Db,
  tenantId: string,
  role: Role,
  extra: Partial<typeof user.$inferInsert> = {},
): Promise<{ id: string; key: string }> {
  seq += 1;
  const [u] = await db
    .insert(user)
    .values({
      tenantId,
      role,
      email: `${role.toLowerCase()}${seq}@acme.test`,
      name: `${role} ${seq}`,
      ...extra,
    })
    .returning({ id: user.id });
  const k = generateApiKey();
  await db
    .insert(apiKey)
    .values({ tenantId, userId: u!.id, name: "test", prefix: k.prefix, secretHash: k.secretHash });
  return { id: u!.id, key: k.key };
}

/** A queue with one inbound address routed to it (test setup; the config API has its own tests). */
export async function createQueueWithAddress(
  db: Db,
  tenantId: string,
  opts: {
    address?: string;
    queue?: Partial<typeof queue.$inferInsert>;
    addressFields?: Partial<typeof emailAddress.$inferInsert>;
  } = {},
): Promise<{ queueId: string; addressId: string; address: string }> {
  seq += 1;
  const [q] = await db
    .insert(queue)
    .values({ tenantId, name: `Queue ${seq}`, ...opts.queue })
    .returning({ id: queue.id });
  const address = opts.address ?? `support${seq}@acme.test`;
  const [a] = await db
    .insert(emailAddress)
    .values({ tenantId, address, name: `Support ${seq}`, queueId: q!.id, ...opts.addressFields })
    .returning({ id: emailAddress.id });
  return { queueId: q!.id, addressId: a!.id, address };
}

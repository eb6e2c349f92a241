import type { Db } from "../../src/db/client.js";
import { apiKey, user } from "../../src/db/schema/index.js";
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

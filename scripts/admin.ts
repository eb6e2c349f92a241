/**
 * Operator CLI (`npm run admin -- <command>`), working on the same database `npm start`
 * uses (DATABASE_URL, or the embedded one in DATA_DIR, started if needed).
 *
 *   create-tenant --name "Acme" --admin-email ops@acme.test [--time-zone Europe/Berlin]
 *   create-key --user-email ops@acme.test --tenant-id <uuid> [--name laptop]
 */
import { parseArgs } from "node:util";
import { and, eq } from "drizzle-orm";
import { loadConfig } from "../src/config.js";
import { connect } from "../src/db/client.js";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { runMigrations } from "../src/db/migrate.js";
import { apiKey, user } from "../src/db/schema/index.js";
import { createTenantWithAdmin } from "../src/engine/auth.js";
import { generateApiKey } from "../src/engine/crypto.js";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    name: { type: "string" },
    "admin-email": { type: "string" },
    "time-zone": { type: "string" },
    "user-email": { type: "string" },
    "tenant-id": { type: "string" },
  },
});

const config = loadConfig();
let stopEmbedded: (() => Promise<void>) | null = null;
let url = config.databaseUrl;
if (!url) {
  const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
  url = embedded.url;
  stopEmbedded = embedded.stop;
}
await runMigrations(url);
const database = connect(url, { max: 2 });
try {
  switch (positionals[0]) {
    case "create-tenant": {
      if (!values.name || !values["admin-email"]) throw new Error("--name and --admin-email are required");
      const r = await createTenantWithAdmin(database.db, {
        tenantName: values.name,
        adminEmail: values["admin-email"],
        timeZone: values["time-zone"],
      });
      console.log(JSON.stringify({ tenantId: r.tenantId, adminUserId: r.userId, apiKey: r.apiKey }, null, 2));
      break;
    }
    case "create-key": {
      if (!values["user-email"] || !values["tenant-id"])
        throw new Error("--user-email and --tenant-id are required");
      const [u] = await database.db
        .select()
        .from(user)
        .where(
          and(eq(user.tenantId, values["tenant-id"]), eq(user.email, values["user-email"].toLowerCase())),
        );
      if (!u) throw new Error("no such user in that tenant");
      const key = generateApiKey();
      await database.db.insert(apiKey).values({
        tenantId: u.tenantId,
        userId: u.id,
        name: values.name ?? "cli",
        prefix: key.prefix,
        secretHash: key.secretHash,
      });
      console.log(JSON.stringify({ userId: u.id, apiKey: key.key }, null, 2));
      break;
    }
    default:
      console.error(
        "usage: npm run admin -- create-tenant --name N --admin-email E | create-key --user-email E --tenant-id T",
      );
      process.exitCode = 2;
  }
} finally {
  await database.close();
  await stopEmbedded?.();
}

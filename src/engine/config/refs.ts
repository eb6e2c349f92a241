import { and, eq, inArray, isNull } from "drizzle-orm";
import type { AnyPgColumn, PgTable } from "drizzle-orm/pg-core";
import type { DbOrTx } from "../../db/client.js";
import type { Problems } from "../errors.js";

/** Any tenant-owned, archivable table: every configuration object has these three columns. */
export type RefTable = PgTable & { id: AnyPgColumn; tenantId: AnyPgColumn; archivedAt: AnyPgColumn };

export interface Ref {
  /** Input path reported on failure, e.g. `calendarId` or `requiredSkillIds[1]`. */
  field: string;
  table: RefTable;
  id: string | null | undefined;
  /** Human name for the message, e.g. "business calendar". */
  what: string;
}

/**
 * Checks that referenced objects exist, are active and belong to the caller's tenant. A
 * foreign tenant's ID gets the same answer as an unknown one, so nothing leaks.
 */
export async function checkRefs(db: DbOrTx, tenantId: string, p: Problems, refs: Ref[]): Promise<void> {
  const byTable = new Map<RefTable, Ref[]>();
  for (const r of refs) {
    if (r.id === null || r.id === undefined) continue;
    byTable.set(r.table, [...(byTable.get(r.table) ?? []), r]);
  }
  for (const [table, list] of byTable) {
    const ids = [...new Set(list.map((r) => r.id!))];
    const rows = await db
      .select({ id: table.id })
      .from(table)
      .where(and(eq(table.tenantId, tenantId), inArray(table.id, ids), isNull(table.archivedAt)));
    const found = new Set(rows.map((r) => r.id as string));
    for (const r of list) if (!found.has(r.id!)) p.add(r.field, `no such ${r.what}`);
  }
}

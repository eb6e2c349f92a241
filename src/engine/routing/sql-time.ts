/**
 * Timestamps in raw SQL on the drizzle postgres.js client: drizzle makes that client pass
 * timestamp values through as text (it parses them itself), so raw queries send ISO
 * strings and parse what they read.
 */
export function iso(d: Date): string {
  return d.toISOString();
}

export function toDate(v: Date | string | null): Date | null {
  if (v === null) return null;
  return v instanceof Date ? v : new Date(v);
}

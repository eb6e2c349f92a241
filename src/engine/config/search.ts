/** ILIKE pattern for a case-insensitive substring search; the user's % and _ match literally. */
export function likePattern(search: string): string {
  // No stored text can hold U+0000 (PostgreSQL refuses it): a NUL is dropped from the search
  // rather than failing it.
  return `%${search.replaceAll("\u0000", "").replace(/[%_\\]/g, "\\$&")}%`;
}

/** Orders batch-loaded rows like the requested IDs (DataLoader contract), null where missing. */
export function inIdOrder<T extends { id: string }>(
  ids: readonly string[],
  rows: readonly T[],
): (T | null)[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => byId.get(id) ?? null);
}

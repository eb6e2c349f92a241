/** Offset pages for configuration lists: small, admin-facing, ordered by name. */
export interface Page {
  limit: number;
  offset: number;
}

export const MAX_PAGE = 200;
/**
 * No configuration list is this long: a cursor past it (forged, or from a client bug)
 * reads an empty page instead of overflowing PostgreSQL's OFFSET.
 */
export const MAX_OFFSET = 10_000_000;

export function clampPage(page: Page): Page {
  const offset = Number.isFinite(page.offset) ? Math.min(Math.max(page.offset, 0), MAX_OFFSET) : 0;
  // Never NaN: drizzle leaves the LIMIT out for a value that is not >= 0.
  const limit = Number.isFinite(page.limit) ? Math.min(Math.max(page.limit, 0), MAX_PAGE + 1) : MAX_PAGE + 1;
  return { limit, offset };
}

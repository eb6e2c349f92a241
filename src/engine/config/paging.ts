/** Offset pages for configuration lists: small, admin-facing, ordered by name. */
export interface Page {
  limit: number;
  offset: number;
}

export const MAX_PAGE = 200;

export function clampPage(page: Page): Page {
  return { limit: Math.min(Math.max(page.limit, 0), MAX_PAGE + 1), offset: Math.max(page.offset, 0) };
}

import { resolveOffsetConnection } from "@pothos/plugin-relay";
import { GraphQLError } from "graphql";

/**
 * Paging arguments as every list reads them, checked before any read: a cursor the server
 * did not make, or a page size it cannot serve, is the caller's error (docs/api.md
 * "Errors and limits"), never an internal one and never a read without a LIMIT.
 */

interface PageArgs {
  first?: number | null | undefined;
  last?: number | null | undefined;
  after?: string | null | undefined;
  before?: string | null | undefined;
}

/**
 * The page sizes the lists serve: what a list gives without `first`/`last`, and the most it
 * gives. The resolvers page by these, and the cost limit counts a list asked for without a
 * size at its default (`query-cost.ts`), so the two cannot drift apart.
 */
export const PAGE_SIZES = {
  "Query.conversations": { default: 50, max: 200 },
  "Conversation.timeline": { default: 100, max: 500 },
  "Conversation.messages": { default: 100, max: 500 },
  /** Every list paged by offset (configuration lists, contacts, rejected messages). */
  offset: { default: 20, max: 100 },
} as const;

/** A cursor this server did not make: code VALIDATION, as a malformed ID in a filter. */
export function badCursor(field: "after" | "before"): GraphQLError {
  return new GraphQLError(`${field}: not a valid cursor`, { extensions: { code: "VALIDATION" } });
}

/**
 * What Pothos's offset cursors hold: `OffsetConnection:<n>`. A number past the end of the
 * list, or a negative one, reads an empty page or the first (`clampPage`), as documented.
 */
const OFFSET_CURSOR = /^OffsetConnection:-?\d{1,20}$/;

/**
 * `resolveOffsetConnection` with its cursors checked first. Pothos reads the number with
 * `parseInt`: `OffsetConnection:x` became NaN, which drizzle took for "no LIMIT", and the
 * whole table was read.
 */
export function offsetConnection<T>(
  args: PageArgs,
  load: (page: { offset: number; limit: number }) => Promise<T[]>,
) {
  for (const field of ["after", "before"] as const) {
    const cursor = args[field];
    if (cursor != null && !OFFSET_CURSOR.test(Buffer.from(cursor, "base64").toString("latin1"))) {
      throw badCursor(field);
    }
  }
  return resolveOffsetConnection(
    { args, defaultSize: PAGE_SIZES.offset.default, maxSize: PAGE_SIZES.offset.max },
    load,
  );
}

/**
 * The page size of a list paged forward only (`first`/`after`, keyset cursors): `first`, or
 * the list's default, at most `max`. `last`/`before` and a negative `first` are refused
 * (BAD_USER_INPUT), not ignored. A larger `first` is served as `max` with `hasNextPage`
 * true while more follow, so a client that pages on misses nothing.
 */
export function forwardPageSize(args: PageArgs, sizes: { default: number; max: number }): number {
  if (args.last != null || args.before != null) {
    throw new GraphQLError("last and before are not supported here: page forward with first and after", {
      extensions: { code: "BAD_USER_INPUT" },
    });
  }
  const first = args.first ?? sizes.default;
  if (first < 0) {
    throw new GraphQLError('Argument "first" must be a non-negative integer', {
      extensions: { code: "BAD_USER_INPUT" },
    });
  }
  return Math.min(first, sizes.max);
}

/**
 * The page of a keyset list paged either way: forward with `first`/`after` from the start,
 * or backward with `last`/`before` from the end, never both at once (BAD_USER_INPUT). The
 * size is `first` or `last`, or the list's default, at most `max`; a negative one is
 * refused. The cursor (base64url of a key this server handed out) must match `key`.
 */
export function twoWayPage(
  args: PageArgs,
  sizes: { default: number; max: number },
  key: RegExp,
): { limit: number; cursor: string | null; direction: "forward" | "backward" } {
  const backward = args.last != null || args.before != null;
  if (backward && (args.first != null || args.after != null)) {
    throw new GraphQLError("Page with first/after or with last/before, not both", {
      extensions: { code: "BAD_USER_INPUT" },
    });
  }
  const size = (backward ? args.last : args.first) ?? sizes.default;
  if (size < 0) {
    throw new GraphQLError(`Argument "${backward ? "last" : "first"}" must be a non-negative integer`, {
      extensions: { code: "BAD_USER_INPUT" },
    });
  }
  const field = backward ? "before" : "after";
  const raw = args[field];
  let cursor: string | null = null;
  if (raw != null) {
    cursor = Buffer.from(raw, "base64url").toString("latin1");
    if (!key.test(cursor)) throw badCursor(field);
  }
  return { limit: Math.min(size, sizes.max), cursor, direction: backward ? "backward" : "forward" };
}

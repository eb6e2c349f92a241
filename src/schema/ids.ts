import { decodeGlobalID, encodeGlobalID } from "@pothos/plugin-relay";
import { NotFoundError } from "../engine/errors.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Decodes a Relay global ID of the expected type. Malformed IDs, IDs of another type and
 * non-UUIDs are all "not found" — the same answer as a foreign tenant's ID.
 */
export function decodeId(globalId: string, typename: string): string {
  try {
    const { typename: t, id } = decodeGlobalID(globalId);
    if (t === typename && UUID_RE.test(id)) return id.toLowerCase();
  } catch {
    // fall through: a malformed ID is simply not found
  }
  throw new NotFoundError(typename, globalId);
}

export function decodeIds(globalIds: readonly string[], typename: string): string[] {
  return globalIds.map((g) => decodeId(g, typename));
}

export function decodeOptionalId(
  globalId: string | null | undefined,
  typename: string,
): string | null | undefined {
  if (globalId === undefined) return undefined;
  if (globalId === null) return null;
  return decodeId(globalId, typename);
}

export const encodeId = encodeGlobalID;

/** Never stored: an ID that cannot exist, so reference checks report it as "no such …". */
const NIL_UUID = "00000000-0000-0000-0000-000000000000";

/**
 * Decodes an ID that an input *refers to* (a queue's calendar, an address's account). A
 * malformed or wrong-type ID becomes an ID that cannot exist, so the engine reports it as a
 * field error on that input, like an unknown or foreign one; the object being changed itself
 * uses `decodeId` and is NotFound.
 */
export function decodeRefId(
  globalId: string | null | undefined,
  typename: string,
): string | null | undefined {
  if (globalId === undefined || globalId === null) return globalId;
  try {
    return decodeId(globalId, typename);
  } catch {
    return NIL_UUID;
  }
}

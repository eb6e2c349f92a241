import { ValidationError } from "../engine/errors.js";
import { decodeId } from "./ids.js";

/**
 * Decodes a global ID that an input *refers to* (a team for a user, a queue for a profile).
 * Malformed, wrong-type, unknown and foreign IDs all become a ValidationError on that
 * field — the object being edited exists, the reference in the form is what is wrong.
 */
export function decodeRef(globalId: string, typename: string, field: string): string {
  try {
    return decodeId(globalId, typename);
  } catch {
    throw new ValidationError({
      field,
      message: `no such ${typename.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()}`,
    });
  }
}

export function decodeOptionalRef(
  globalId: string | null | undefined,
  typename: string,
  field: string,
): string | null | undefined {
  if (globalId === undefined || globalId === null) return globalId;
  return decodeRef(globalId, typename, field);
}

/** For list filters: an ID that cannot be ours simply matches nothing. */
export function decodeFilterId(globalId: string, typename: string): string | null {
  try {
    return decodeId(globalId, typename);
  } catch {
    return null;
  }
}

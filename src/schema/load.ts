import { brandWithType } from "@pothos/core";
import type { EngineContext } from "../engine/context.js";
import { DomainError } from "../engine/errors.js";
import type { Viewer } from "../engine/viewer.js";
import type { GraphQLContext } from "./context.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A node's `loadOne` from the engine's permission-checked getter: `node(id:)` answers null
 * for an anonymous caller and for an object the caller may not see or that does not exist
 * (the getter's NotFoundError, or ForbiddenError for a role that may not read the type),
 * and lets every other error through (a lock timeout is a RETRY, not "not found").
 *
 * The object is branded with its type here. Pothos relay caches a `node(id:)` load as a
 * promise and brands the object only after it settles; a `nodes(ids:)` with the same ID in
 * the same request took the unbranded object from that cache, and the Node interface
 * could not tell its type (an internal graphql-js error instead of the object).
 */
export function loadVisible<T extends object>(
  ref: { name: string },
  get: (ctx: EngineContext, viewer: Viewer, id: string) => Promise<T>,
) {
  return async (id: string, ctx: GraphQLContext): Promise<T | null> => {
    // A global ID of the right type around something that is no UUID names nothing.
    if (!ctx.viewer || !UUID_RE.test(id)) return null;
    const found = await get(ctx.engine, ctx.viewer, id).catch((e) => {
      if (e instanceof DomainError) return null;
      throw e;
    });
    // Pothos brands with the type name (a string) itself; its signature wants its own types.
    if (found) brandWithType(found, ref.name as never);
    return found;
  };
}

import { GraphQLError } from "graphql";
import {
  ConflictError,
  DomainError,
  type FieldProblem,
  ForbiddenError,
  NotFoundError,
  ValidationError,
} from "../engine/errors.js";
import { builder } from "./builder.js";

/**
 * Typed error results (STYLE 7): every mutation returns its result or one of these.
 * Unexpected errors are not listed here and stay masked.
 */
export const ErrorInterface = builder.interfaceRef<DomainError>("Error").implement({
  description: "An expected failure a client can show or act on.",
  fields: (t) => ({
    message: t.exposeString("message", { description: "Human-readable explanation (English)." }),
    code: t.exposeString("code", {
      description: "Stable machine-readable code, e.g. VALIDATION, NOT_FOUND.",
    }),
  }),
});

const FieldProblemRef = builder.objectRef<FieldProblem>("FieldProblem").implement({
  description: "One invalid input field.",
  fields: (t) => ({
    field: t.exposeString("field", { description: "Input path, e.g. `intervals[2].start`." }),
    message: t.exposeString("message", { description: "What is wrong with it." }),
  }),
});

builder.objectType(ValidationError, {
  name: "ValidationError",
  description: "The input broke one or more rules; every problem is listed with its field.",
  interfaces: [ErrorInterface],
  isTypeOf: (v) => v instanceof ValidationError,
  fields: (t) => ({
    field: t.exposeString("field", { description: "The first offending field." }),
    problems: t.field({
      type: [FieldProblemRef],
      description: "Every problem found, so a form can mark all fields at once.",
      resolve: (e) => e.problems,
    }),
  }),
});

builder.objectType(NotFoundError, {
  name: "NotFoundError",
  description: "No such object for this caller: unknown, in another tenant, or outside the caller's queues.",
  interfaces: [ErrorInterface],
  isTypeOf: (v) => v instanceof NotFoundError,
  fields: (t) => ({
    entity: t.exposeString("entity", { description: "The kind of object that was looked up." }),
    id: t.exposeString("id", { description: "The ID that was looked up, as given." }),
  }),
});

builder.objectType(ForbiddenError, {
  name: "ForbiddenError",
  description: "The caller is authenticated but its role or permissions do not allow this.",
  interfaces: [ErrorInterface],
  isTypeOf: (v) => v instanceof ForbiddenError,
  fields: (t) => ({
    permission: t.exposeString("permission", {
      nullable: true,
      description: "The missing permission, when one permission decides it.",
    }),
  }),
});

builder.objectType(ConflictError, {
  name: "ConflictError",
  description: "The object's current state does not allow this change (e.g. an illegal status transition).",
  interfaces: [ErrorInterface],
  isTypeOf: (v) => v instanceof ConflictError,
  fields: () => ({}),
});

/** The error set most mutations declare. */
export const standardErrors = [ValidationError, NotFoundError, ForbiddenError, ConflictError];

/**
 * For fields with no result union (queries, object fields, subscriptions): an expected
 * failure becomes a GraphQL error with its code (VALIDATION, NOT_FOUND …) instead of a
 * masked one. `body` may throw or return a promise that rejects; both are mapped.
 */
export function asGraphQLErrors<T>(body: () => T): T {
  try {
    const out = body();
    if (out instanceof Promise) return out.catch(rethrowCoded) as T;
    return out;
  } catch (e) {
    return rethrowCoded(e);
  }
}

function rethrowCoded(e: unknown): never {
  if (e instanceof DomainError) throw new GraphQLError(e.message, { extensions: { code: e.code } });
  throw e;
}

import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { type ArgumentNode, type DocumentNode, GraphQLError, Kind, validate, visit } from "graphql";
import type { Plugin } from "graphql-yoga";

/**
 * The query cost limit again, at execution, with the request's variables in place of the
 * page sizes they give. graphql-armor's rule runs at validation, which has no variables:
 * it multiplies a list's cost by `first`/`last` only when they are literals, and counts
 * `first: $n` as 1. Thirty aliases of `conversations(first: $n) { … timeline(first: $m) }`
 * with n = 200 and m = 500 then passed a limit the same query with literals fails, and cost
 * the server ~12,000 statements. Here the document is checked once more by the same rule
 * (same options), with each `first`/`last` variable written in as the integer it holds.
 * Nothing is done for a request without such variables: the validation saw all of it.
 */
export function useVariableCostLimit(maxCost: number): Plugin {
  const rule = costLimitRule({ maxCost });
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const vars = args.variableValues;
      if (!vars) return;
      const document = withPageSizes(args.document, vars);
      if (document === args.document) return;
      let errors: readonly GraphQLError[];
      try {
        errors = validate(args.schema, document, [rule]);
      } catch (e) {
        // The rule throws its error rather than reporting it.
        errors = [e instanceof GraphQLError ? e : new GraphQLError(String(e))];
      }
      if (errors.length > 0) {
        setResultAndStopExecution({
          errors: errors.map(
            (e) =>
              new GraphQLError(e.message.replace(/^Syntax Error: /, ""), {
                extensions: { code: "BAD_USER_INPUT" },
              }),
          ),
        });
      }
    },
  };
}

/** `document` with every `first:`/`last:` variable that holds an integer written in; the same object when none does. */
function withPageSizes(document: DocumentNode, vars: Record<string, unknown>): DocumentNode {
  let changed = false;
  const out = visit(document, {
    Argument(node: ArgumentNode) {
      if (node.name.value !== "first" && node.name.value !== "last") return undefined;
      if (node.value.kind !== Kind.VARIABLE) return undefined;
      const value = vars[node.value.name.value];
      if (typeof value !== "number" || !Number.isInteger(value)) return undefined;
      changed = true;
      return { ...node, value: { kind: Kind.INT, value: String(value) } };
    },
  });
  return changed ? out : document;
}

/**
 * Expected failures the API reports as typed results (STYLE 7). Anything else is a bug
 * and stays masked. Each class carries structured fields a client can act on.
 */
export class DomainError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export interface FieldProblem {
  /** Input path such as `intervals[2].start` or `name`. */
  field: string;
  message: string;
}

export class ValidationError extends DomainError {
  readonly problems: FieldProblem[];
  constructor(problems: FieldProblem[] | FieldProblem) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(list.map((p) => `${p.field}: ${p.message}`).join("; ") || "Invalid input", "VALIDATION");
    this.problems = list;
  }
  /** The first offending field, for clients that show one message. */
  get field(): string {
    return this.problems[0]?.field ?? "";
  }
}

/** Unknown IDs, foreign-tenant IDs and objects outside the caller's queues all look the same. */
export class NotFoundError extends DomainError {
  constructor(
    readonly entity: string,
    readonly id: string,
  ) {
    super(`${entity} not found`, "NOT_FOUND");
  }
}

export class ForbiddenError extends DomainError {
  constructor(
    message: string,
    readonly permission: string | null = null,
  ) {
    super(message, "FORBIDDEN");
  }
}

/** A state conflict: an illegal status transition, an offer no longer pending, a duplicate. */
export class ConflictError extends DomainError {
  constructor(message: string, code = "CONFLICT") {
    super(message, code);
  }
}

/** Collects field problems and throws them together, so a client sees every mistake at once. */
export class Problems {
  readonly list: FieldProblem[] = [];
  add(field: string, message: string): this {
    this.list.push({ field, message });
    return this;
  }
  check(ok: boolean, field: string, message: string): this {
    if (!ok) this.add(field, message);
    return this;
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw new ValidationError(this.list);
  }
}

/** What a caught value says, for a log line or a stored reason: an Error's message, else the value as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

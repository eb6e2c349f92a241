/**
 * One problem with one input field, e.g. `{ field: "intervals[2].start", message: "…" }`.
 * Validators return every problem at once so a client can show them all together; the
 * shape matches the API's field-problem type so the two need no mapping.
 */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * Typed outbound errors. Each carries a stable `code` and the input `field` it is about,
 * so a GraphQL mutation can return it as a result-union member instead of a masked
 * error, and a client can highlight the field the agent has to fix.
 */

export const COMPOSE_ERROR_CODES = [
  "NO_RECIPIENTS",
  "TOO_MANY_RECIPIENTS",
  "TOO_MANY_BCC",
  "INVALID_ADDRESS",
  "INVALID_HEADER",
  "INVALID_ATTACHMENT",
  "INVALID_TEMPLATE",
  "INVALID_MESSAGE_ID_DOMAIN",
  "INVALID_TIME_ZONE",
  "SUBJECT_EDIT_NOT_ALLOWED",
  "SUBJECT_REQUIRED",
  "CONFLICTING_SUBJECT_OPTIONS",
  "NO_MESSAGE_TO_REPLY_TO",
  "EMPTY_BODY",
  "TOO_LARGE",
] as const;
export type ComposeErrorCode = (typeof COMPOSE_ERROR_CODES)[number];

export class ComposeError extends Error {
  override readonly name = "ComposeError";
  constructor(
    readonly code: ComposeErrorCode,
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export const AUTO_REPLY_ERROR_CODES = [
  "TOO_MANY_INLINE_IMAGES",
  "TOO_MANY_ATTACHMENTS",
  "INLINE_NOT_IMAGE",
  "ATTACHMENT_TYPE_NOT_ALLOWED",
  "TOO_LARGE",
  "INVALID_TIME_ZONE",
] as const;
export type AutoReplyErrorCode = (typeof AUTO_REPLY_ERROR_CODES)[number];

export class AutoReplyError extends Error {
  override readonly name = "AutoReplyError";
  constructor(
    readonly code: AutoReplyErrorCode,
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

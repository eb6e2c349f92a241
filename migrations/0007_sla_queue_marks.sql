ALTER TABLE "conversation" ADD COLUMN "sla_at_risk_from" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "conversation" ADD COLUMN "sla_breached_from" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "email_address" DROP COLUMN "rule_set_id";--> statement-breakpoint
-- Backfill without a calendar walk: due instants already stored are exact breach marks of
-- running clocks; a warning already announced for a still-pending target marks "at risk"
-- (from any earlier instant). Other marks are written exactly by the conversation's next
-- SLA change or its next sla-check job (scheduled for its next warning or due instant).
UPDATE "conversation" SET
  "sla_breached_from" = least("first_response_due_at", "next_response_due_at", "resolution_due_at"),
  "sla_at_risk_from" = CASE WHEN
      ("sla_state"->'clock'->>'firstResponseClock' IS NULL
        AND "sla_state"->'notified' @> '["FIRST_RESPONSE:0:warning"]'::jsonb)
      OR ("sla_state"->'clock'->>'awaitingReplySince' IS NOT NULL
        AND "sla_state"->'notified' @> jsonb_build_array(
          'NEXT_RESPONSE:' || ("sla_state"->'clock'->>'awaitingReplySince') || ':warning'))
      OR (coalesce("sla_state"->'clock'->>'pauseReason', '') <> 'RESOLVED'
        AND "sla_state"->'notified' @> '["RESOLUTION:0:warning"]'::jsonb)
    THEN "created_at" END
WHERE "sla_state" IS NOT NULL;

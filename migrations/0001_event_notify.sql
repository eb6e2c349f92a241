-- Wake every instance when events commit (ARCHITECTURE "Events are the spine").
-- Statement-level with a constant payload: PostgreSQL folds identical notifications in
-- one transaction into one, and delivers them only on COMMIT, so a rolled-back change
-- never wakes anyone. Listeners then read rows past their (tx_id, id) cursor.
CREATE OR REPLACE FUNCTION switchboard_event_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('switchboard_event', '');
  RETURN NULL;
END
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER event_notify AFTER INSERT ON "event" FOR EACH STATEMENT EXECUTE FUNCTION switchboard_event_notify();

-- Wake the search indexers when messages are queued (src/engine/search.ts), instead of
-- their looking at the queue every second. Constant payload: PostgreSQL folds identical
-- notifications in one transaction into one and delivers them only on COMMIT.
CREATE OR REPLACE FUNCTION switchboard_message_search_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO message_search_queue (message_id, tenant_id) SELECT id, tenant_id FROM new_messages;
  PERFORM pg_notify('switchboard_search', '');
  RETURN NULL;
END $$;

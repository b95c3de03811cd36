-- The PostgreSQL queue's schema and rules, in migration steps.
--
-- Each step starts with a line `-- version: N` and runs once, in order, in
-- one transaction, under an advisory lock, so several replicas starting at
-- once apply it exactly once. Never edit a released step: add the next one.
-- Times are seconds since the epoch from the service's own clock (the same
-- clock the SQLite queue uses), so both backends keep one set of rules.

-- version: 1
CREATE TABLE requests (
    request_id   text PRIMARY KEY,
    delivery_key text NOT NULL UNIQUE,
    kind         text NOT NULL,
    payload      jsonb NOT NULL,
    received_at  double precision NOT NULL,
    job_id       text
);

CREATE TABLE tasks (
    task_id          text PRIMARY KEY,
    request_id       text NOT NULL REFERENCES requests (request_id),
    kind             text NOT NULL,
    asset_id         text,
    state            text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    not_before       double precision NOT NULL,
    lease_owner      text,
    lease_until      double precision,
    first_claimed_at double precision,
    last_error       text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    -- Clicks and webhook events wait in lanes of their own, each with its
    -- own limit; a click's tasks rank ahead of events that have waited less
    -- than a minute longer (rank_at = not_before, plus 60 s for events).
    lane             text NOT NULL DEFAULT 'click',
    rank_at          double precision
);

CREATE INDEX tasks_ready ON tasks (state, not_before);
CREATE INDEX tasks_by_request ON tasks (request_id);
CREATE INDEX tasks_by_asset ON tasks (asset_id, state);
-- An asset reached twice (two collections, a repeated id) is one task.
CREATE UNIQUE INDEX tasks_once ON tasks (request_id, kind, asset_id);
CREATE INDEX tasks_waiting ON tasks (lane, state);
CREATE INDEX tasks_pending_refresh ON tasks (asset_id, kind, state);

-- Claim the next task for `owner`: due (or left behind by a worker whose
-- lease lapsed), first in line by rank, never one whose asset has another task
-- running under a live lease. Rows are taken FOR UPDATE SKIP LOCKED so
-- claimers never wait on each other; a transaction-scoped advisory lock per
-- asset, with the "running?" check repeated once it is held, keeps two
-- claimers that picked two tasks of one asset at the same moment from both
-- starting one.
CREATE FUNCTION claim_task(p_owner text, p_now double precision, p_lease double precision)
RETURNS SETOF tasks
LANGUAGE plpgsql AS $$
DECLARE
    candidate tasks;
BEGIN
    FOR candidate IN
        SELECT * FROM tasks t
        WHERE ((t.state = 'queued' AND t.not_before <= p_now)
               OR (t.state = 'running' AND t.lease_until < p_now))
          AND (t.asset_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM tasks busy
                WHERE busy.asset_id = t.asset_id AND busy.state = 'running'
                  AND busy.lease_until >= p_now AND busy.task_id <> t.task_id))
        ORDER BY t.rank_at, t.created_at
        LIMIT 20
        FOR UPDATE SKIP LOCKED
    LOOP
        IF candidate.asset_id IS NOT NULL THEN
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('caption-bridge asset'),
                                                        hashtext(candidate.asset_id));
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM tasks busy
                WHERE busy.asset_id = candidate.asset_id AND busy.state = 'running'
                  AND busy.lease_until >= p_now AND busy.task_id <> candidate.task_id);
        END IF;
        RETURN QUERY
            UPDATE tasks SET state = 'running', lease_owner = p_owner,
                   lease_until = p_now + p_lease, attempts = attempts + 1,
                   first_claimed_at = coalesce(first_claimed_at, p_now), updated_at = p_now
            WHERE task_id = candidate.task_id
            RETURNING *;
        RETURN;
    END LOOP;
END;
$$;

-- A heartbeat row that readiness writes: proof that the queue takes writes.
CREATE TABLE readiness_heartbeat (id integer PRIMARY KEY, beat_at double precision NOT NULL);

-- version: 2
-- The bundle registry: which folders hold a bundle of which asset, so that
-- finding an asset's bundles never lists the storage.
CREATE TABLE bundles (
    asset_id   text NOT NULL,
    folder     text NOT NULL,
    status     text NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (asset_id, folder)
);
-- One row once the registry holds the bundles made before it existed.
CREATE TABLE registry_filled (id integer PRIMARY KEY, filled_at double precision NOT NULL);

-- version: 3
-- One Iconik rate budget for the whole deployment: a token bucket in one
-- row, so every replica's limiter draws from it, on the database's clock.
CREATE TABLE rate_budget (
    id           integer PRIMARY KEY,
    tokens       double precision NOT NULL,
    updated_at   double precision NOT NULL,
    paused_until double precision NOT NULL
);

-- Up to p_wanted tokens now, from a bucket of at most p_burst refilled at
-- p_rate per second; none while paused. Returns what was granted and, when
-- nothing was, how long to wait before asking again.
CREATE FUNCTION take_rate_tokens(p_wanted integer, p_rate double precision, p_burst integer)
RETURNS TABLE (granted integer, wait double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_now double precision := extract(epoch FROM clock_timestamp());
    v_row rate_budget;
    v_tokens double precision;
    v_available integer;
BEGIN
    INSERT INTO rate_budget VALUES (1, p_burst, v_now, 0) ON CONFLICT (id) DO NOTHING;
    SELECT * INTO v_row FROM rate_budget WHERE id = 1 FOR UPDATE;
    IF v_now < v_row.paused_until THEN
        RETURN QUERY SELECT 0, v_row.paused_until - v_now;
        RETURN;
    END IF;
    v_tokens := least(p_burst::double precision,
                      v_row.tokens + greatest(0, v_now - v_row.updated_at) * p_rate);
    v_available := floor(v_tokens + 1e-9);
    IF v_available >= 1 THEN
        UPDATE rate_budget SET tokens = v_tokens - least(p_wanted, v_available),
               updated_at = v_now WHERE id = 1;
        RETURN QUERY SELECT least(p_wanted, v_available), 0.0::double precision;
    ELSE
        UPDATE rate_budget SET tokens = v_tokens, updated_at = v_now WHERE id = 1;
        RETURN QUERY SELECT 0, (1.0 - v_tokens) / p_rate;
    END IF;
END;
$$;

-- A 429 seen by any replica: nobody gets a token until it has passed, then
-- the rate resumes from an empty bucket, not a burst.
CREATE FUNCTION pause_rate_budget(p_seconds double precision)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_until double precision := extract(epoch FROM clock_timestamp()) + p_seconds;
BEGIN
    INSERT INTO rate_budget VALUES (1, 0, v_until, v_until) ON CONFLICT (id) DO UPDATE
        SET paused_until = greatest(rate_budget.paused_until, excluded.paused_until),
            tokens = 0,
            updated_at = greatest(rate_budget.paused_until, excluded.paused_until);
END;
$$;

-- version: 4
-- The clicking user's Iconik token, sealed (service/iconik/user_token.py), for the
-- request's expand task; set to NULL in the transaction that ends that task.
ALTER TABLE requests ADD COLUMN user_token text;

-- version: 5
-- Replicas of the previous version may still be running: no task changes
-- state between the failures' count below and the triggers that keep it.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

-- Status reads, each bounded by an index however long the history: the
-- latest failures (partial: only failed tasks are in it), the caption files
-- delivered to an asset, and, for retention, the oldest requests first;
-- which asset a folder belongs to is one lookup per delivery.
CREATE INDEX tasks_failed ON tasks (updated_at) WHERE state = 'failed';
CREATE INDEX tasks_deliveries ON tasks (asset_id, created_at) WHERE kind = 'deliver';
CREATE INDEX requests_by_time ON requests (received_at);
CREATE INDEX bundles_by_folder ON bundles (folder);

-- How many tasks have failed: `status` shows it beside the latest ones
-- without counting them all. Kept by a trigger that does nothing (its WHEN
-- is false) unless a task enters or leaves the failed state.
CREATE TABLE failed_tasks (id integer PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
INSERT INTO failed_tasks SELECT 1, count(*) FROM tasks WHERE state = 'failed';

CREATE FUNCTION count_failed_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state = 'failed' THEN
        UPDATE failed_tasks SET n = n - 1 WHERE id = 1;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state = 'failed' THEN
        UPDATE failed_tasks SET n = n + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER failed_tasks_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.state = 'failed') EXECUTE FUNCTION count_failed_tasks();
CREATE TRIGGER failed_tasks_update AFTER UPDATE OF state ON tasks
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                       AND 'failed' IN (OLD.state, NEW.state))
    EXECUTE FUNCTION count_failed_tasks();
CREATE TRIGGER failed_tasks_delete AFTER DELETE ON tasks
    FOR EACH ROW WHEN (OLD.state = 'failed') EXECUTE FUNCTION count_failed_tasks();

-- Group commit: every delivery a process received meanwhile, admitted in
-- one statement (one round trip, one transaction, one commit), by the same
-- rules as the SQLite queue's (service/queue/sqlite_intake.py), in order,
-- each delivery seeing the ones before it:
-- - a delivery key stored before (or earlier in the batch) is a duplicate;
-- - an event about an asset with no bundle and no waiting task is ignored
--   (until the registry is filled, every asset may have a bundle);
-- - a second update of an asset whose refresh still waits is coalesced
--   into it; a delete supersedes the waiting refresh;
-- - a lane whose queued tasks reached its limit refuses ('full').
-- Events about one asset are admitted one at a time across replicas (an
-- advisory lock per asset, taken in one order so batches never deadlock).
-- p_items: [{"request_id", "key", "kind", "payload" (an object), "task_id",
-- "task_kind", "asset_id", "lane", "user_token" (sealed, or null)}]. Returns, per item, its place (item_at,
-- from 1), its outcome ('stored', 'duplicate', 'coalesced', 'ignored',
-- 'full') and the request id it ended as.
CREATE FUNCTION admit_deliveries(p_items jsonb, p_now double precision,
                                 p_max_backlog integer, p_max_event_backlog integer,
                                 p_lane_delay double precision)
RETURNS TABLE (item_at integer, outcome text, admitted_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_item jsonb;
    v_at bigint;
    v_asset text;
    v_lane text;
    v_found text;
    v_waiting_click bigint;
    v_waiting_event bigint;
    v_superseded bigint;
    v_stored boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('caption-bridge intake'), lock_key)
    FROM (SELECT DISTINCT hashtext(e->>'asset_id') AS lock_key
          FROM jsonb_array_elements(p_items) e
          WHERE e->>'lane' = 'event' AND e->>'asset_id' IS NOT NULL) locks
    ORDER BY lock_key;
    SELECT count(*) INTO v_waiting_click FROM tasks WHERE lane = 'click' AND state = 'queued';
    SELECT count(*) INTO v_waiting_event FROM tasks WHERE lane = 'event' AND state = 'queued';
    FOR v_item, v_at IN SELECT value, ordinality FROM jsonb_array_elements(p_items)
                        WITH ORDINALITY LOOP
        item_at := v_at;
        v_asset := v_item->>'asset_id';
        v_lane := v_item->>'lane';
        SELECT r.request_id INTO v_found FROM requests r WHERE r.delivery_key = v_item->>'key';
        IF FOUND THEN
            outcome := 'duplicate'; admitted_id := v_found; RETURN NEXT; CONTINUE;
        END IF;
        IF v_lane = 'event' AND v_asset IS NOT NULL THEN
            IF EXISTS (SELECT 1 FROM registry_filled)
               AND NOT EXISTS (SELECT 1 FROM bundles b WHERE b.asset_id = v_asset)
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.asset_id = v_asset
                               AND t.state IN ('queued', 'running')) THEN
                outcome := 'ignored'; admitted_id := NULL; RETURN NEXT; CONTINUE;
            END IF;
            IF v_item->>'task_kind' = 'refresh' THEN
                SELECT t.request_id INTO v_found FROM tasks t
                WHERE t.asset_id = v_asset AND t.kind = 'refresh' AND t.state = 'queued' LIMIT 1;
                IF FOUND THEN
                    outcome := 'coalesced'; admitted_id := v_found; RETURN NEXT; CONTINUE;
                END IF;
            ELSIF v_item->>'task_kind' = 'withdraw' THEN
                UPDATE tasks t SET state = 'done', last_error = 'superseded by a delete event',
                       updated_at = p_now
                WHERE t.asset_id = v_asset AND t.kind = 'refresh' AND t.state = 'queued';
                GET DIAGNOSTICS v_superseded = ROW_COUNT;
                v_waiting_event := v_waiting_event - v_superseded;
            END IF;
        END IF;
        IF (v_lane = 'event' AND v_waiting_event >= p_max_event_backlog)
           OR (v_lane <> 'event' AND v_waiting_click >= p_max_backlog) THEN
            outcome := 'full'; admitted_id := NULL; RETURN NEXT; CONTINUE;
        END IF;
        INSERT INTO requests (request_id, delivery_key, kind, payload, received_at, user_token)
        VALUES (v_item->>'request_id', v_item->>'key', v_item->>'kind', v_item->'payload', p_now,
                v_item->>'user_token')
        ON CONFLICT (delivery_key) DO NOTHING;
        IF NOT FOUND THEN  -- a twin committed meanwhile (another replica)
            SELECT r.request_id INTO v_found FROM requests r
            WHERE r.delivery_key = v_item->>'key';
            outcome := 'duplicate'; admitted_id := v_found; RETURN NEXT; CONTINUE;
        END IF;
        INSERT INTO tasks (task_id, request_id, kind, asset_id, state, not_before,
                           created_at, updated_at, lane, rank_at)
        VALUES (v_item->>'task_id', v_item->>'request_id', v_item->>'task_kind', v_asset,
                'queued', p_now, p_now, p_now, v_lane,
                p_now + CASE WHEN v_lane = 'event' THEN p_lane_delay ELSE 0 END)
        ON CONFLICT DO NOTHING;
        IF v_lane = 'event' THEN
            v_waiting_event := v_waiting_event + 1;
        ELSE
            v_waiting_click := v_waiting_click + 1;
        END IF;
        v_stored := true;
        outcome := 'stored'; admitted_id := v_item->>'request_id'; RETURN NEXT;
    END LOOP;
    IF v_stored THEN
        PERFORM pg_notify('caption_bridge_tasks', '');
    END IF;
END;
$$;

-- version: 6
-- Work one process of the deployment does at a time (the deliver scan, the
-- registry's first fill): held by `holder` until `expires_at` (the
-- database's clock, so replicas' clocks need not agree), then free.
CREATE TABLE leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at double precision NOT NULL
);

-- version: 7
-- The outbox (service/queue/outbox.py): notifications stored in the
-- transaction of the change that caused them, each event once (its id),
-- then one send per destination, sent in order per destination and asset.
CREATE TABLE outbox_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    type        text NOT NULL,
    asset_id    text NOT NULL,
    data        jsonb NOT NULL,
    happened_at double precision NOT NULL,
    stored_at   double precision NOT NULL,
    fanned_out  boolean NOT NULL DEFAULT false
);
CREATE INDEX outbox_events_new ON outbox_events (seq) WHERE NOT fanned_out;
CREATE INDEX outbox_events_by_time ON outbox_events (stored_at);

CREATE TABLE outbox_sends (
    seq         bigint NOT NULL,
    destination text NOT NULL,
    asset_id    text NOT NULL,
    state       text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     double precision NOT NULL,
    last_error  text,
    updated_at  double precision NOT NULL,
    PRIMARY KEY (seq, destination)
);
-- The head of each (destination, asset) line, and what is due, among waiting sends only.
CREATE INDEX outbox_sends_line ON outbox_sends (destination, asset_id, seq)
    WHERE state = 'queued';
CREATE INDEX outbox_sends_due ON outbox_sends (next_at) WHERE state = 'queued';

-- version: 8
-- Open work (service/queue/work_sql.py): per bundle folder, the due date,
-- the languages asked for, those delivered and those still missing (JSON
-- arrays as text, as the SQLite queue keeps them), and the due date whose
-- notifications were stored. Written by builds and deliveries.
CREATE TABLE due_work (
    folder           text PRIMARY KEY,
    asset_id         text NOT NULL,
    title            text NOT NULL,
    request_id       text,
    due_at           double precision,
    due_date         text,
    languages        text NOT NULL,
    delivered        text NOT NULL,
    missing          text NOT NULL,
    soon_sent_for    double precision,
    overdue_sent_for double precision,
    updated_at       double precision NOT NULL
);
CREATE INDEX due_work_open ON due_work (due_at) WHERE missing <> '[]';

-- version: 9
-- The request facts each build recorded (service/bundle.RequestFacts, as
-- JSON text): what a webhook's rebuild says of who asked, the brief and the
-- due date, since the folder's project.json is the captioners' to write.
ALTER TABLE due_work ADD COLUMN request text;

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
-- The clicking user's Iconik token, sealed (service/user_token.py), for the
-- request's expand task; set to NULL in the transaction that ends that task.
ALTER TABLE requests ADD COLUMN user_token text;

-- The SQLite queue's schema, in migration steps (service/queue/sqlite_migrate.py).
--
-- Each step starts with a line `-- version: N`; a file records the last step
-- it has in `PRAGMA user_version`, and the steps after it run once, in order,
-- in one transaction under the write lock, so processes opening one file at
-- once apply each exactly once. Never edit a released step: add the next one.
--
-- Files made before the steps were versioned say version 0 whatever they
-- hold, so every step can meet a file that has it already: tables and
-- indexes are made IF NOT EXISTS, counts inserted OR IGNORE, and a step that
-- adds columns says `-- unless column: table.column` (skipped when present).
-- Times are seconds since the epoch from the service's own clock.

-- version: 1
-- The first queue: stored deliveries (requests) and the tasks they own.
CREATE TABLE IF NOT EXISTS requests (
    request_id   TEXT PRIMARY KEY,
    delivery_key TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    received_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id          TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES requests(request_id),
    kind             TEXT NOT NULL,
    asset_id         TEXT,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       REAL NOT NULL,
    lease_owner      TEXT,
    lease_until      REAL,
    first_claimed_at REAL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(state, not_before);
CREATE INDEX IF NOT EXISTS tasks_by_request ON tasks(request_id);
-- An asset reached twice (two collections, a repeated id) is one task.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_once ON tasks(request_id, kind, asset_id);

-- version: 2
-- The Iconik job that reports a request's progress.
-- unless column: requests.job_id
ALTER TABLE requests ADD COLUMN job_id TEXT;

-- version: 3
-- The claim asks "does this asset have a task under a live lease?" on every call.
CREATE INDEX IF NOT EXISTS tasks_by_asset ON tasks(asset_id, state);

-- version: 4
-- The bundle registry: which folders hold a bundle of which asset.
CREATE TABLE IF NOT EXISTS bundles (
    asset_id   TEXT NOT NULL,
    folder     TEXT NOT NULL,
    status     TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (asset_id, folder)
);
-- One row once the registry holds the bundles made before it existed.
CREATE TABLE IF NOT EXISTS registry_filled (id INTEGER PRIMARY KEY, filled_at REAL NOT NULL);

-- version: 5
-- Clicks and webhook events wait in lanes of their own; a task's place in
-- line is its rank (service/queue/types.py, EVENT_LANE_DELAY).
-- unless column: tasks.lane
ALTER TABLE tasks ADD COLUMN lane TEXT NOT NULL DEFAULT 'click';
ALTER TABLE tasks ADD COLUMN rank_at REAL;
UPDATE tasks SET rank_at = not_before;
CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks(lane, state);
CREATE INDEX IF NOT EXISTS tasks_pending_refresh ON tasks(asset_id, kind, state);

-- version: 6
-- How many tasks are queued, running and failed in each lane, kept by the
-- transactions that change them: a 429 decision, `backlog()` and the
-- failure count read one row each, however long the queue. Triggers keep it
-- right whatever statement changes a task's state.
CREATE TABLE IF NOT EXISTS task_counts (
    lane TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (lane, state)
);
CREATE TRIGGER IF NOT EXISTS task_counts_insert AFTER INSERT ON tasks BEGIN
    UPDATE task_counts SET n = n + 1 WHERE lane = NEW.lane AND state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS task_counts_update AFTER UPDATE OF state ON tasks
WHEN OLD.state <> NEW.state BEGIN
    UPDATE task_counts SET n = n - 1 WHERE lane = OLD.lane AND state = OLD.state;
    UPDATE task_counts SET n = n + 1 WHERE lane = NEW.lane AND state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE lane = OLD.lane AND state = OLD.state;
END;
-- The tasks already there counted once, in the same transaction (under the write lock).
INSERT OR IGNORE INTO task_counts (lane, state, n)
    SELECT lanes.lane, states.state,
           (SELECT COUNT(*) FROM tasks WHERE lane = lanes.lane AND state = states.state)
    FROM (SELECT 'click' AS lane UNION ALL SELECT 'event') lanes,
         (SELECT 'queued' AS state UNION ALL SELECT 'running' UNION ALL SELECT 'failed') states;

-- version: 7
-- Indexes that earlier versions made and that no statement needs: a task's
-- request is found by tasks_once's first column, its asset's waiting tasks
-- by tasks_by_asset, and the lanes' sizes are kept in task_counts. Every
-- index is one more B-tree that each of a burst's inserts has to update.
-- (PostgreSQL keeps all three: its intake counts each lane's waiting tasks
-- through tasks_waiting, having no counter table, and its planner reads a
-- request's tasks and an asset's pending refresh through the other two;
-- tests/system/queue/test_queue_plans.py checks both backends' plans.)
DROP INDEX IF EXISTS tasks_by_request;
DROP INDEX IF EXISTS tasks_waiting;
DROP INDEX IF EXISTS tasks_pending_refresh;

-- version: 8
-- Retention (service/queue/retention.py): status reads bounded by indexes,
-- and the failed tasks counted (a counter made before this had no failed rows).
-- Which asset a folder belongs to: one lookup per delivery (the primary key
-- leads with the asset).
CREATE INDEX IF NOT EXISTS bundles_by_folder ON bundles(folder);
-- Status reads, each bounded by an index however long the history:
-- the latest failures (partial: only failed tasks are in it)...
CREATE INDEX IF NOT EXISTS tasks_failed ON tasks(updated_at) WHERE state = 'failed';
-- ...the caption files delivered to an asset, latest first...
CREATE INDEX IF NOT EXISTS tasks_deliveries ON tasks(asset_id, created_at)
    WHERE kind = 'deliver';
-- ...and, for retention, the oldest requests first.
CREATE INDEX IF NOT EXISTS requests_by_time ON requests(received_at);
INSERT OR IGNORE INTO task_counts (lane, state, n)
    SELECT lanes.lane, 'failed',
           (SELECT COUNT(*) FROM tasks WHERE state = 'failed' AND lane = lanes.lane)
    FROM (SELECT 'click' AS lane UNION ALL SELECT 'event') lanes;

-- version: 9
-- Work one process of the deployment does at a time (the deliver scan, the
-- registry's first fill): held by `holder` until `expires_at`, then free.
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);

-- version: 10
-- The clicking user's Iconik token, sealed (service/iconik/user_token.py), for the
-- request's expand task; NULL once that task ended.
-- unless column: requests.user_token
ALTER TABLE requests ADD COLUMN user_token TEXT;

-- version: 11
-- Open work (service/queue/work_sql.py).
CREATE TABLE IF NOT EXISTS due_work (
    folder           TEXT PRIMARY KEY,
    asset_id         TEXT NOT NULL,
    title            TEXT NOT NULL,
    request_id       TEXT,
    due_at           REAL,
    due_date         TEXT,
    languages        TEXT NOT NULL,
    delivered        TEXT NOT NULL,
    missing          TEXT NOT NULL,
    soon_sent_for    REAL,
    overdue_sent_for REAL,
    updated_at       REAL NOT NULL
);
-- Open work by due date: the checker's and `status`'s reads.
CREATE INDEX IF NOT EXISTS due_work_open ON due_work(due_at) WHERE missing <> '[]';

-- version: 12
-- The outbox (service/queue/outbox.py): notifications stored in the
-- transaction of the change that caused them, each event once (its id),
-- then one send per destination, sent in order per destination and asset.
CREATE TABLE IF NOT EXISTS outbox_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    asset_id    TEXT NOT NULL,
    data        TEXT NOT NULL,
    happened_at REAL NOT NULL,
    stored_at   REAL NOT NULL,
    fanned_out  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_events_new ON outbox_events(seq) WHERE fanned_out = 0;
CREATE INDEX IF NOT EXISTS outbox_events_by_time ON outbox_events(stored_at);
CREATE TABLE IF NOT EXISTS outbox_sends (
    seq         INTEGER NOT NULL,
    destination TEXT NOT NULL,
    asset_id    TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL,
    last_error  TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (seq, destination)
);
-- The head of each (destination, asset) line, and what is due, among waiting sends only.
CREATE INDEX IF NOT EXISTS outbox_sends_line ON outbox_sends(destination, asset_id, seq)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS outbox_sends_due ON outbox_sends(next_at) WHERE state = 'queued';

-- version: 13
-- The request facts each build recorded (service/bundle.RequestFacts, as
-- JSON): what a webhook's rebuild says of who asked, the brief and the due
-- date, since the folder's project.json is the captioners' to write.
-- unless column: due_work.request
ALTER TABLE due_work ADD COLUMN request TEXT;

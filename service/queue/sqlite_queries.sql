-- The SQLite queue's statements, each under a line `-- name: NAME`
-- (loaded by name: service/queue/sqlite_sql.py). Its schema is sqlite.sql.

-- name: take_lease
-- Taken when free or expired, renewed by its holder; the caller reads back
-- who holds it (SQLite's upsert cannot say whether its WHERE let it through).
INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :expires)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at <= :now

-- name: expired
-- Requests past the retention window: every task finished (done or failed)
-- and nothing about them changed since the cutoff. Walked oldest first by
-- requests_by_time; an old request still unfinished is skipped, never
-- deleted. Each candidate comes with its task count, so a batch can stop
-- at a number of rows rather than of requests (a click may hold 1000 tasks).
SELECT r.request_id, (SELECT count(*) FROM tasks t WHERE t.request_id = r.request_id) AS n
FROM requests r
WHERE r.received_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = r.request_id
                  AND (t.state IN ('queued', 'running') OR t.updated_at >= :cutoff))
ORDER BY r.received_at
LIMIT :candidates

-- name: delete_tasks
DELETE FROM tasks WHERE request_id IN (SELECT value FROM json_each(?))

-- name: delete_requests
DELETE FROM requests WHERE request_id IN (SELECT value FROM json_each(?))

-- name: request
SELECT request_id, kind, payload, received_at, job_id FROM requests WHERE request_id = ?

-- name: request_tasks
-- A request's tasks, through tasks_once (it leads with the request).
SELECT kind, asset_id, state, attempts, last_error, not_before, updated_at, lease_until FROM tasks WHERE request_id = ? ORDER BY created_at, asset_id

-- name: caption_deliveries
-- The caption files delivered back to some assets, latest first: through
-- tasks_deliveries, so what is read is those assets' deliveries, never their
-- whole history of builds and refreshes.
SELECT * FROM (
    SELECT r.request_id, r.received_at, r.payload, t.asset_id, t.state, t.attempts,
           t.last_error, t.lease_until
    FROM tasks t JOIN requests r USING (request_id)
    WHERE t.kind = 'deliver' AND t.asset_id IN (SELECT value FROM json_each(?))
    ORDER BY t.created_at DESC LIMIT ?
) ORDER BY received_at

-- name: recent_failures
SELECT request_id, kind, asset_id, attempts, last_error, updated_at FROM tasks WHERE state = 'failed' ORDER BY updated_at DESC LIMIT ?

-- name: claim
-- The next task to run: due (or left behind by a worker whose lease lapsed),
-- first in line by rank (a click's tasks rank EVENT_LANE_DELAY ahead of
-- events), and never one whose asset already has a task running under a
-- live lease. The rule lives here, in the claim's own transaction, so it holds
-- for every worker of every process sharing the file, not just within one.
-- CROSS JOIN keeps the tasks the outer loop whatever the statistics say: with
-- those of an ANALYZE of a long history, SQLite scanned every request instead
-- (140 ms per claim at 100k, every claim holding the writer).
SELECT t.*, r.kind AS request_kind, r.payload, r.user_token FROM tasks t
CROSS JOIN requests r USING (request_id)
WHERE ((t.state = 'queued' AND t.not_before <= :now)
       OR (t.state = 'running' AND t.lease_until < :now))
  AND (t.asset_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM tasks busy
        WHERE busy.asset_id = t.asset_id AND busy.state = 'running'
          AND busy.lease_until >= :now AND busy.task_id <> t.task_id))
ORDER BY t.rank_at, t.created_at
LIMIT 1

-- name: known_asset
-- An asset the service knows: it has a bundle, or a task waiting or running.
-- Until the registry holds the bundles made before it existed, every asset
-- may have one, and events are stored (the worker then looks).
SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM registry_filled) OR EXISTS (SELECT 1 FROM bundles WHERE asset_id = ?) OR EXISTS (SELECT 1 FROM tasks WHERE asset_id = ? AND state IN ('queued', 'running'))

-- name: pending_refresh
SELECT request_id FROM tasks WHERE asset_id = ? AND kind = 'refresh' AND state = 'queued' LIMIT 1

-- name: supersede_refresh
-- A delete makes a waiting refresh of the same asset pointless.
UPDATE tasks SET state = 'done', last_error = 'superseded by a delete event', updated_at = ? WHERE asset_id = ? AND kind = 'refresh' AND state = 'queued'

-- name: bundle_folders
-- Which folders hold a bundle of an asset (the primary key), of every asset,
-- and who a folder belongs to (bundles_by_folder). Split by argument: one
-- statement with `? IS NULL OR asset_id = ?` made SQLite scan them all.
SELECT DISTINCT folder FROM bundles ORDER BY folder

-- name: bundle_folders_of
SELECT folder FROM bundles WHERE asset_id = ? ORDER BY folder

-- name: bundle_records
SELECT asset_id, folder, status FROM bundles ORDER BY folder, asset_id

-- name: bundle_records_of
SELECT asset_id, folder, status FROM bundles WHERE folder = ? ORDER BY asset_id

-- name: record_bundle
INSERT INTO bundles (asset_id, folder, status, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (asset_id, folder) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at

-- name: insert_requests
-- A batch's deliveries go in as one JSON array, one statement for all of
-- them: Python's sqlite3 hands the GIL back and forth around every row of an
-- executemany, and each hand-over waits on the event loop's thread.
INSERT INTO requests (request_id, delivery_key, kind, payload, received_at, user_token)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?)

-- name: insert_tasks
INSERT OR IGNORE INTO tasks (task_id, request_id, kind, asset_id, state,
                             not_before, created_at, updated_at, lane, rank_at)
SELECT value->>0, value->>1, value->>2, value->>3, 'queued',
       value->>4, value->>4, value->>4, value->>5, value->>6 FROM json_each(?)

-- name: insert_failed_task
-- A child stored already failed (an asset the clicking user may not read).
INSERT OR IGNORE INTO tasks (task_id, request_id, kind, asset_id, state, last_error, not_before, created_at, updated_at, lane, rank_at) VALUES (?, ?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?)

-- name: insert_task
INSERT OR IGNORE INTO tasks (task_id, request_id, kind, asset_id, state, not_before, created_at, updated_at, lane, rank_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)

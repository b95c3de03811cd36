"""The SQLite queue's rules, in SQL: the statements that decide a claim and
an intake, and the status reads (its schema is sqlite.sql).
(PostgreSQL keeps its own in postgres.sql, postgres_intake.py and postgres.py.)

The statements are in sqlite_queries.sql, each under its name; here they
are module constants, so each use names the statement it runs.
"""

from service.queue.sql_files import named

_statements = named("sqlite_queries.sql")

TAKE_LEASE = _statements["take_lease"]
EXPIRED = _statements["expired"]
DELETE_TASKS = _statements["delete_tasks"]
DELETE_REQUESTS = _statements["delete_requests"]
REQUEST = _statements["request"]
REQUEST_TASKS = _statements["request_tasks"]
CAPTION_DELIVERIES = _statements["caption_deliveries"]
RECENT_FAILURES = _statements["recent_failures"]
CLAIM = _statements["claim"]
KNOWN_ASSET = _statements["known_asset"]
PENDING_REFRESH = _statements["pending_refresh"]
SUPERSEDE_REFRESH = _statements["supersede_refresh"]
BUNDLE_FOLDERS = _statements["bundle_folders"]
BUNDLE_FOLDERS_OF = _statements["bundle_folders_of"]
BUNDLE_RECORDS = _statements["bundle_records"]
BUNDLE_RECORDS_OF = _statements["bundle_records_of"]
RECORD_BUNDLE = _statements["record_bundle"]
INSERT_REQUESTS = _statements["insert_requests"]
INSERT_TASKS = _statements["insert_tasks"]
INSERT_FAILED_TASK = _statements["insert_failed_task"]
INSERT_TASK = _statements["insert_task"]

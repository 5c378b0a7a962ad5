-- gwsms schema 5: which worker process owns a queued message
-- ([gateway] workers > 1, see gwsms/workers.py).
--   owner: the worker index (0..N-1) that stored or last claimed it;
--   lease_until: no longer used (schema 7 drops it: a heartbeat per worker
--   in worker_leases replaces a lease per message).
--   With one process owner stays 0 and is not looked at.
-- One column per statement (SQLite adds one at a time).
ALTER TABLE messages ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN lease_until DOUBLE NOT NULL DEFAULT 0;

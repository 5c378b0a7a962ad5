-- gwsms schema 5: which worker process owns a queued message
-- ([gateway] workers > 1, see gwsms/workers.py).
--   owner: the worker index (0..N-1) that stored or last claimed it;
--   lease_until: until when that worker holds it.  A live worker renews the
--   lease of its queued messages every quarter lease; another worker takes
--   a due message over only once its lease has passed (an atomic UPDATE
--   ... WHERE owner = ? AND lease_until < now), so two workers never work on
--   one message.  With one process both stay 0 and are not looked at.
-- One column per statement (SQLite adds one at a time).
ALTER TABLE messages ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN lease_until DOUBLE NOT NULL DEFAULT 0;

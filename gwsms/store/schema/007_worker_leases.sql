-- gwsms schema 7: worker heartbeats ([gateway] workers > 1, see
-- gwsms/workers.py) replace the per-message lease of schema 5.
--   worker_leases: one row per worker index; a live worker moves its
--   alive_until forward every quarter lease.  Another worker takes over a
--   due message (messages.owner) only when its owner's alive_until has
--   passed or the owner has no row, with an atomic UPDATE ... WHERE owner = ?
--   (on MySQL after a locking read of the owner's heartbeat), so two
--   workers never work on one message.  With one process nothing here is
--   read or written.
CREATE TABLE worker_leases (
    worker INTEGER NOT NULL PRIMARY KEY,
    alive_until DOUBLE NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0
) {{TABLE_OPTIONS}};
ALTER TABLE messages DROP COLUMN lease_until;

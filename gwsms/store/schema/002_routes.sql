-- gwsms schema 2: message routing (see gwsms/core/routing.py).
-- direction 'mt' = SIP -> SMPP (smsc: the connection to use, sip_uri '');
-- direction 'mo' = SMPP -> SIP (sip_uri: the target; smsc: only messages
-- that arrived on that connection, '' = any).  prefix '' is the default
-- route, source_prefix '' matches any source; lower priority is preferred
-- and equal priorities share the load.  The unique key refuses the same
-- route twice; its size stays within InnoDB's 3072-byte limit with utf8mb4:
-- (2 + 32 + 32 + 255 + 255) * 4 = 2304.
CREATE TABLE routes (
    id {{AUTO_ID}},
    direction VARCHAR(2) NOT NULL,
    prefix VARCHAR(32) NOT NULL DEFAULT '',
    source_prefix VARCHAR(32) NOT NULL DEFAULT '',
    smsc VARCHAR(255) NOT NULL DEFAULT '',
    sip_uri VARCHAR(255) NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 0,
    created DOUBLE NOT NULL
) {{TABLE_OPTIONS}};
CREATE UNIQUE INDEX routes_unique ON routes (direction, prefix, source_prefix, smsc, sip_uri);

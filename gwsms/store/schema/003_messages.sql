-- gwsms schema 3: the message store (SIP <-> SMPP gateway core).
-- Portable SQL; {{AUTO_ID}} and {{TABLE_OPTIONS}} are filled in per dialect.
--
-- messages.direction: 'mt' (SIP -> SMPP) or 'mo' (SMPP -> SIP).
-- messages.state (see gwsms/store/messages.py):
--   MT: queued -> submitted -> delivered | undeliverable;  queued -> failed |
--       expired | rejected (answered 503, never sent);
--   MO: queued -> delivered | failed | expired.

CREATE TABLE messages (
    id {{AUTO_ID}},
    direction VARCHAR(2) NOT NULL,
    state VARCHAR(16) NOT NULL,
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL,
    source_addr VARCHAR(64) NOT NULL DEFAULT '',
    source_ton INTEGER NOT NULL DEFAULT 0,
    source_npi INTEGER NOT NULL DEFAULT 0,
    dest_addr VARCHAR(64) NOT NULL DEFAULT '',
    dest_ton INTEGER NOT NULL DEFAULT 0,
    dest_npi INTEGER NOT NULL DEFAULT 0,
    smsc VARCHAR(255) NOT NULL DEFAULT '',
    sip_from VARCHAR(512) NOT NULL DEFAULT '',
    sip_to VARCHAR(512) NOT NULL DEFAULT '',
    call_id VARCHAR(255) NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    content_type VARCHAR(64) NOT NULL DEFAULT 'text/plain',
    data_coding INTEGER NOT NULL DEFAULT 0,
    concat_ref INTEGER NOT NULL DEFAULT 0,
    parts_total INTEGER NOT NULL DEFAULT 1,
    parts_done INTEGER NOT NULL DEFAULT 0,
    partial INTEGER NOT NULL DEFAULT 0,
    registered_delivery INTEGER NOT NULL DEFAULT 0,
    imdn_id VARCHAR(255) NOT NULL DEFAULT '',
    imdn_want VARCHAR(128) NOT NULL DEFAULT '',
    imdn_datetime VARCHAR(64) NOT NULL DEFAULT '',
    imdn_to VARCHAR(512) NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE NOT NULL DEFAULT 0,
    expires_at DOUBLE NOT NULL DEFAULT 0,
    sip_status INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR(255) NOT NULL DEFAULT ''
) {{TABLE_OPTIONS}};
CREATE INDEX messages_due ON messages (state, next_attempt_at);
CREATE INDEX messages_created ON messages (created_at);

-- One row per submit_sm of an MT message (seq 1..parts_total), or the
-- single row of an MO message.  smsc_message_id is written as soon as the
-- submit_sm_resp arrives: a part with an id is never submitted again.
CREATE TABLE message_parts (
    message_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    state VARCHAR(16) NOT NULL,
    smsc_message_id VARCHAR(65) NOT NULL DEFAULT '',
    updated_at DOUBLE NOT NULL,
    error VARCHAR(64) NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, seq)
) {{TABLE_OPTIONS}};

-- Receipt correlation: the id of every submitted part that asked for a
-- receipt, under each of gwsms.core.receipts.canonical_ids(id) (variant 0 =
-- the exact key); removed when the message reaches its final state.
CREATE TABLE receipt_ids (
    smsc VARCHAR(255) NOT NULL,
    id_key VARCHAR(72) NOT NULL,
    variant INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    seq INTEGER NOT NULL
) {{TABLE_OPTIONS}};
CREATE INDEX receipt_ids_key ON receipt_ids (id_key, smsc);
CREATE INDEX receipt_ids_message ON receipt_ids (message_id);

-- Duplicate recognition within [gateway] dedup_window: MT by Call-ID, CSeq,
-- From tag and sender; MO by SMSC, addresses and a hash of the content.
CREATE TABLE message_dedup (
    dedup_key CHAR(40) NOT NULL PRIMARY KEY,
    message_id INTEGER NOT NULL,
    created_at DOUBLE NOT NULL
) {{TABLE_OPTIONS}};
CREATE INDEX message_dedup_created ON message_dedup (created_at);

-- Durable reassembly state of long MO messages (one row per received part).
CREATE TABLE mo_fragments (
    frag_key VARCHAR(320) NOT NULL,
    seq INTEGER NOT NULL,
    total INTEGER NOT NULL,
    data_coding INTEGER NOT NULL,
    payload BLOB NOT NULL,
    first_seen DOUBLE NOT NULL,
    PRIMARY KEY (frag_key, seq)
) {{TABLE_OPTIONS}};

-- What happened to each message, in order (attempts, answers, receipts).
CREATE TABLE message_events (
    id {{AUTO_ID}},
    message_id INTEGER NOT NULL,
    at DOUBLE NOT NULL,
    event VARCHAR(32) NOT NULL,
    detail VARCHAR(255) NOT NULL DEFAULT ''
) {{TABLE_OPTIONS}};
CREATE INDEX message_events_message ON message_events (message_id);

-- gwsms schema 1: SMSC connections, SIP users, SIP registrations.
-- Portable SQL; {{AUTO_ID}} and {{TABLE_OPTIONS}} are filled in per dialect
-- by gwsms/store/engines.py.  Statements end with ";" at the end of a line.
-- `window` is a reserved word in MySQL/MariaDB: backticks work in both.

-- One row per SMSC connection.  The first twelve columns are those of the
-- OpenSIPS proto_smpp "smpp" table, so rows can be copied over; the rest are
-- gwsms additions whose defaults equal gwsms.smpp.link.SmscLink's.
CREATE TABLE smpp (
    id {{AUTO_ID}},
    name VARCHAR(255) NOT NULL,
    ip VARCHAR(255) NOT NULL,
    port INTEGER NOT NULL,
    system_id VARCHAR(16) NOT NULL,
    password VARCHAR(9) NOT NULL,
    system_type VARCHAR(13) NOT NULL DEFAULT '',
    src_ton INTEGER NOT NULL DEFAULT 0,
    src_npi INTEGER NOT NULL DEFAULT 0,
    dst_ton INTEGER NOT NULL DEFAULT 0,
    dst_npi INTEGER NOT NULL DEFAULT 0,
    session_type INTEGER NOT NULL DEFAULT 1,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    tls BOOLEAN NOT NULL DEFAULT 0,
    tls_verify BOOLEAN NOT NULL DEFAULT 1,
    `window` INTEGER NOT NULL DEFAULT 10,
    max_rate DOUBLE NOT NULL DEFAULT 0,
    enquire_link_interval DOUBLE NOT NULL DEFAULT 30,
    session_init_timeout DOUBLE NOT NULL DEFAULT 10,
    response_timeout DOUBLE NOT NULL DEFAULT 60,
    inactivity_timeout DOUBLE NOT NULL DEFAULT 0,
    default_data_coding INTEGER NOT NULL DEFAULT 0,
    dc0_charset VARCHAR(16) NOT NULL DEFAULT 'gsm',
    address_range VARCHAR(41) NOT NULL DEFAULT '',
    interface_version INTEGER NOT NULL DEFAULT 52
) {{TABLE_OPTIONS}};
CREATE UNIQUE INDEX smpp_name ON smpp (name);

-- SIP digest credentials: HA1 = hex(H("username:realm:password")), never
-- the password itself.
CREATE TABLE sip_users (
    id {{AUTO_ID}},
    username VARCHAR(64) NOT NULL,
    realm VARCHAR(128) NOT NULL,
    ha1_md5 CHAR(32) NOT NULL,
    ha1_sha256 CHAR(64) NOT NULL,
    created DOUBLE NOT NULL
) {{TABLE_OPTIONS}};
CREATE UNIQUE INDEX sip_users_username_realm ON sip_users (username, realm);

-- Registrar bindings.  Sizes keep the unique key within InnoDB's 3072-byte
-- index limit with utf8mb4: (255 + 512) * 4 = 3068.
CREATE TABLE sip_registrations (
    id {{AUTO_ID}},
    aor VARCHAR(255) NOT NULL,
    contact_uri VARCHAR(512) NOT NULL,
    expires_at DOUBLE NOT NULL,
    call_id VARCHAR(255) NOT NULL DEFAULT '',
    cseq INTEGER NOT NULL DEFAULT 0,
    q DOUBLE NOT NULL DEFAULT 1,
    source VARCHAR(255) NOT NULL DEFAULT '',
    transport VARCHAR(8) NOT NULL DEFAULT '',
    updated DOUBLE NOT NULL
) {{TABLE_OPTIONS}};
CREATE UNIQUE INDEX sip_registrations_aor_contact ON sip_registrations (aor, contact_uri);
CREATE INDEX sip_registrations_expires ON sip_registrations (expires_at);

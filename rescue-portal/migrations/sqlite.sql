-- rescue-portal schema, SQLite. Every tenant table keys on (account_id, id); ids are
-- random 63-bit integers minted by the portal (not guessable, not enumerable).
-- Booleans are INTEGER 0/1; times are Unix seconds.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deletion_requested_at INTEGER,
    subscription_ended_at INTEGER,
    webhook_url TEXT,
    webhook_secret BLOB,
    webhook_chat INTEGER NOT NULL DEFAULT 0,
    ca_cert_pem TEXT NOT NULL,
    ca_key BLOB NOT NULL
);
CREATE TABLE account_keys (
    account_id INTEGER PRIMARY KEY,
    wrapped BLOB NOT NULL
);
CREATE TABLE tech_groups (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    name TEXT NOT NULL,
    permissions INTEGER NOT NULL,
    all_in_one INTEGER NOT NULL,
    exclude_chat INTEGER NOT NULL,
    shared_queue INTEGER NOT NULL,
    allow_list TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE technicians (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    group_id INTEGER NOT NULL,
    is_admin INTEGER NOT NULL,
    password_hash TEXT NOT NULL,
    password_one_time INTEGER NOT NULL,
    totp_secret BLOB NOT NULL,
    totp_last_step INTEGER,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, group_id) REFERENCES tech_groups (account_id, id)
);
CREATE TABLE web_sessions (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL,
    technician_id INTEGER NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE TABLE sessions (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    guid TEXT NOT NULL,
    code_hash BLOB NOT NULL UNIQUE,
    group_id INTEGER NOT NULL,
    created_by INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    waiting_since INTEGER,
    claimed_by INTEGER,
    ticket BLOB NOT NULL,
    secret BLOB NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE session_events (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE UNIQUE INDEX session_events_by_session ON session_events (account_id, session_id, seq);
CREATE TABLE session_events_archive (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE admin_audit (
    account_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    before_value TEXT NOT NULL,
    after_value TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE TABLE webhook_deliveries (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

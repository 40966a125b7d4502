-- rescue-portal schema, PostgreSQL. Every tenant table keys on (account_id, id); ids are
-- random 63-bit integers minted by the portal (not guessable, not enumerable).
-- Booleans are BIGINT 0/1; times are Unix seconds.
CREATE TABLE accounts (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deletion_requested_at BIGINT,
    subscription_ended_at BIGINT,
    webhook_url TEXT,
    webhook_secret BYTEA,
    webhook_chat BIGINT NOT NULL DEFAULT 0,
    ca_cert_pem TEXT NOT NULL,
    ca_key BYTEA NOT NULL
);
CREATE TABLE account_keys (
    account_id BIGINT PRIMARY KEY,
    wrapped BYTEA NOT NULL
);
CREATE TABLE tech_groups (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    name TEXT NOT NULL,
    permissions BIGINT NOT NULL,
    all_in_one BIGINT NOT NULL,
    exclude_chat BIGINT NOT NULL,
    shared_queue BIGINT NOT NULL,
    allow_list TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE technicians (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    group_id BIGINT NOT NULL,
    is_admin BIGINT NOT NULL,
    password_hash TEXT NOT NULL,
    password_one_time BIGINT NOT NULL,
    totp_secret BYTEA NOT NULL,
    totp_last_step BIGINT,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, group_id) REFERENCES tech_groups (account_id, id)
);
CREATE TABLE web_sessions (
    token_hash BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL,
    technician_id BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE TABLE sessions (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    guid TEXT NOT NULL,
    code_hash BYTEA NOT NULL UNIQUE,
    group_id BIGINT NOT NULL,
    created_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    waiting_since BIGINT,
    claimed_by BIGINT,
    ticket BYTEA NOT NULL,
    secret BYTEA NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE session_events (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    session_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE UNIQUE INDEX session_events_by_session ON session_events (account_id, session_id, seq);
CREATE TABLE session_events_archive (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    session_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE admin_audit (
    account_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    before_value TEXT NOT NULL,
    after_value TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE TABLE webhook_deliveries (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    msg_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body BYTEA NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

-- outdial schema, SQLite flavour. Timestamps are unix milliseconds; documents are JSON text.
CREATE TABLE applications (name TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE bots (name TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE trunks (name TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at INTEGER NOT NULL);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    bot TEXT NOT NULL,
    client_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX conversations_created ON conversations (created_at DESC, id DESC);
CREATE INDEX conversations_bot_created ON conversations (bot, created_at DESC);
CREATE INDEX conversations_state ON conversations (state);

CREATE TABLE conversation_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX conversation_events_conv ON conversation_events (conversation_id, seq);

CREATE TABLE outbox (
    event_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    secret TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    UNIQUE (conversation_id, sequence)
);
CREATE INDEX outbox_pending ON outbox (status, next_attempt_at);

CREATE TABLE idempotency_keys (
    client_id TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, key)
);

CREATE TABLE signing_keys (id TEXT PRIMARY KEY, secret TEXT NOT NULL, created_at INTEGER NOT NULL);

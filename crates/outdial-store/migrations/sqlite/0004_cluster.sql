-- Cluster mode (docs/cluster.md): each node beats here; each conversation names the node that runs it, so that a
-- node's start never touches another node's calls and exactly one node takes over a lost node's calls; a
-- notification is claimed by one node at a time.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    live_calls BIGINT NOT NULL DEFAULT 0,
    draining BIGINT NOT NULL DEFAULT 0,
    api_url TEXT NOT NULL DEFAULT ''
);
ALTER TABLE conversations ADD COLUMN owner TEXT;
CREATE INDEX conversations_owner_live ON conversations (owner, state);
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;

-- /readyz writes here (docs/operations.md, "What happens when …"): a store that can be read but not written (a full
-- disk) is not ready.
CREATE TABLE store_probe (id TEXT PRIMARY KEY, at BIGINT NOT NULL);

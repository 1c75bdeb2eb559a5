-- +goose Up
-- threshold_versions: every thresholds document accepted (the
-- overrides per tenant and per tenant's model of PROTOCOL.md §2's
-- defaults), newest = in force. Every process running the health engine
-- applies a new version within seconds.
CREATE TABLE threshold_versions (
    version     BIGINT PRIMARY KEY,         -- 1, 2, ...
    body        TEXT NOT NULL,              -- the whole document as JSON
    created_ms  BIGINT NOT NULL,
    created_by  TEXT NOT NULL               -- user or token, or 'import'
);

-- +goose Down
DROP TABLE threshold_versions;

-- +goose Up
-- Commands asked for on a process that cannot reach the terminals (a web
-- replica of a cluster) wait here, queued, until the holder of the health
-- lease publishes them on its broker connection (published_ms).
ALTER TABLE commands ADD COLUMN queued BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE commands ADD COLUMN published_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX commands_outbox ON commands (queued, published_ms);

-- +goose Down
DROP INDEX commands_outbox;
ALTER TABLE commands DROP COLUMN published_ms;
ALTER TABLE commands DROP COLUMN queued;

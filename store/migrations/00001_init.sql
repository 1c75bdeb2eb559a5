-- +goose Up
-- settings: small named values of the whole installation (the session
-- signing key, the data-directory import marker).
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- +goose Down
DROP TABLE settings;

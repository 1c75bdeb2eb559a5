-- +goose Up
-- People and scripts: users (bcrypt password hashes), API tokens (SHA-256
-- of their secret, never the secret) and signed-out sessions. Read per
-- request by every web replica, so a change made on one (or by the CLI)
-- counts on all of them at once. The sessions' signing key is in settings
-- ('session_key'); the import of a previous release's users.db leaves its
-- marker there ('users_imported').

-- users: epoch is the session generation; a password change, disabling or
-- removal moves it on, which ends every session signed in before.
CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,              -- a tenant ID, or '*' for all
    hash        BYTEA NOT NULL,             -- bcrypt
    created_ms  BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE
);

-- api_tokens: a token is pft_<id>_<secret>; only the secret's SHA-256 is
-- kept (256 random bits need no slow hash).
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tenant      TEXT NOT NULL,
    hash        BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    created_by  TEXT NOT NULL DEFAULT ''
);

-- ended_sessions: session IDs signed out before their cookie expires,
-- kept until then.
CREATE TABLE ended_sessions (
    id          TEXT PRIMARY KEY,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX ended_sessions_expires ON ended_sessions (expires_ms);

-- +goose Down
DROP TABLE ended_sessions;
DROP TABLE api_tokens;
DROP TABLE users;

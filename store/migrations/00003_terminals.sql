-- +goose Up
-- terminals: the registry of provisioned terminals (PROTOCOL.md §1, §4):
-- who may connect (the argon2id hash of the secret, in the PHC string
-- format) and where each terminal stands. Every process keeps them all in
-- memory (authentication and the collector's per-message check never
-- query) and reads the rows changed since its last look every few
-- seconds: version is the change version of the row's last write (see
-- terminal_version), the index makes that look cheap.
CREATE TABLE terminals (
    tenant      TEXT NOT NULL,
    terminal    TEXT NOT NULL,
    model       TEXT NOT NULL,
    merchant    TEXT NOT NULL,
    site        TEXT NOT NULL,
    region      TEXT NOT NULL,
    lat         DOUBLE PRECISION,           -- NULL: no coordinates (lat and lon both or neither)
    lon         DOUBLE PRECISION,
    secret_hash TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,            -- last change of the site data or the secret
    version     BIGINT NOT NULL,
    PRIMARY KEY (tenant, terminal)
);
CREATE INDEX terminals_version ON terminals (version);
-- Lists of a merchant's or a site's terminals (the health view, pages).
CREATE INDEX terminals_merchant ON terminals (tenant, merchant);
CREATE INDEX terminals_site ON terminals (tenant, site);

-- terminal_version: the one counter of registry changes. A writer bumps
-- it first in its transaction (UPDATE ... RETURNING) and stamps its rows
-- with the new value; the row lock (PostgreSQL) or the write lock (SQLite)
-- holds the next writer until this one commits, so versions become visible
-- in the order they are given and "version > last seen" never skips a row
-- that commits late. (Timestamps could: two writers' clocks and commit
-- order need not agree.)
CREATE TABLE terminal_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO terminal_version (id, version) VALUES (1, 0);

-- terminal_verified: the persisted cache of verified credentials
-- (registry/verified.go): an HMAC of a secret under a key kept outside the
-- database (credential-cache.key in a data directory), so that a copy of
-- the database alone cannot test guesses faster than argon2id. key_id
-- names the key (a one-way digest of it): replicas with keys of their own
-- share the table without reading or dropping each other's entries. tag
-- is the SHA-256 of the secret hash the secret was verified against: an
-- entry whose terminal has another hash since is never used.
CREATE TABLE terminal_verified (
    tenant   TEXT NOT NULL,
    terminal TEXT NOT NULL,
    key_id   BYTEA NOT NULL,
    mac      BYTEA NOT NULL,
    tag      BYTEA NOT NULL,
    PRIMARY KEY (tenant, terminal, key_id)
);
CREATE INDEX terminal_verified_key ON terminal_verified (key_id);

-- +goose Down
DROP TABLE terminal_verified;
DROP TABLE terminal_version;
DROP TABLE terminals;

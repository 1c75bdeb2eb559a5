-- +goose Up
-- What people and terminals did: commands and their acks, crew visits, the
-- firmware policy's versions, security events and rejections. Written by
-- whichever process did it; read by every web replica.

-- commands: one row per command sent (the newest commands.PerTerminal per
-- terminal are shown; older ones are kept until retention removes them).
CREATE TABLE commands (
    id          TEXT PRIMARY KEY,           -- posfleet.Command.ID
    tenant      TEXT NOT NULL,
    terminal    TEXT NOT NULL,
    body        TEXT NOT NULL,              -- posfleet.Command as JSON
    sent_ms     BIGINT NOT NULL,
    sent_by     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT '',   -- latest ack status, '' until one arrives
    detail      TEXT NOT NULL DEFAULT '',
    ack_ms      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX commands_terminal ON commands (tenant, terminal, sent_ms);

-- command_acks: every ack in arrival order.
CREATE TABLE command_acks (
    command_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,           -- 0, 1, ... per command
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (command_id, seq)
);

-- service_visits: "visit done" from the work list or the API. Written by
-- the replica that took the request; applied by the health engine (the
-- holder of the health lease), which fills applied_ms and cleared.
CREATE TABLE service_visits (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    terminal    TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    by_user     TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    cleared     TEXT NOT NULL DEFAULT '',   -- flag names, comma-separated
    applied_ms  BIGINT NOT NULL DEFAULT 0   -- 0 until the health engine applied it
);
CREATE INDEX service_visits_terminal ON service_visits (tenant, terminal, at_ms);
CREATE INDEX service_visits_pending ON service_visits (applied_ms);

-- policy_versions: every firmware policy accepted, newest = current.
CREATE TABLE policy_versions (
    version     BIGINT PRIMARY KEY,         -- 1, 2, ...
    body        TEXT NOT NULL,              -- the policy as YAML, as accepted
    created_ms  BIGINT NOT NULL,
    created_by  TEXT NOT NULL               -- user, or 'import' for policy.yaml
);

-- security_events and rejections: bounded by retention (age and count).
CREATE TABLE security_events (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,              -- '' when the username named none
    terminal    TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    username    TEXT NOT NULL,              -- redacted as collected
    topic       TEXT NOT NULL,
    remote      TEXT NOT NULL,
    known       BOOLEAN NOT NULL,
    count       BIGINT NOT NULL
);
CREATE INDEX security_events_tenant ON security_events (tenant, at_ms);
CREATE INDEX security_events_at ON security_events (at_ms);

CREATE TABLE rejections (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    terminal    TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    field       TEXT NOT NULL,
    count       BIGINT NOT NULL
);
CREATE INDEX rejections_tenant ON rejections (tenant, at_ms);
CREATE INDEX rejections_terminal ON rejections (tenant, terminal, at_ms);
CREATE INDEX rejections_at ON rejections (at_ms);

-- +goose Down
DROP TABLE rejections;
DROP TABLE security_events;
DROP TABLE policy_versions;
DROP TABLE service_visits;
DROP TABLE command_acks;
DROP TABLE commands;

-- +goose Up
-- Alarms, their history, notification channels and routes, and the
-- notifications outbox (posfleet.Alarm, Channel, Route, Notification).
-- Alarm transitions and the notifications they cause are written in one
-- transaction by the holder of the health lease; users' actions by any
-- web replica; notifications are delivered by the holder of the lease
-- "notify".

CREATE TABLE alarms (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    terminal         TEXT NOT NULL,          -- '' for an incident's alarm
    kind             TEXT NOT NULL,          -- flag name, or 'incident'
    incident         TEXT NOT NULL,          -- the incident's ID, '' for a terminal's alarm
    urgent           BOOLEAN NOT NULL,
    merchant         TEXT NOT NULL,
    region           TEXT NOT NULL,
    state            TEXT NOT NULL,          -- open, acknowledged, assigned, resolved
    active           BOOLEAN NOT NULL,       -- the evidence is there
    opened_ms        BIGINT NOT NULL,
    cleared_ms       BIGINT NOT NULL DEFAULT 0,
    resolved_ms      BIGINT NOT NULL DEFAULT 0,
    resolved_by      TEXT NOT NULL DEFAULT '',
    ack_by           TEXT NOT NULL DEFAULT '',
    ack_ms           BIGINT NOT NULL DEFAULT 0,
    assignee         TEXT NOT NULL DEFAULT '',
    snoozed_until_ms BIGINT NOT NULL DEFAULT 0,
    parent           TEXT NOT NULL DEFAULT '',  -- the incident alarm it is folded into
    occurrences      INTEGER NOT NULL DEFAULT 1,
    evidence         TEXT NOT NULL DEFAULT 'null',
    updated_ms       BIGINT NOT NULL
);
-- One live alarm per terminal and kind (per incident for incidents): two
-- writers racing cannot make a duplicate.
CREATE UNIQUE INDEX alarms_live ON alarms (tenant, terminal, kind, incident) WHERE state <> 'resolved';
CREATE INDEX alarms_list ON alarms (tenant, state, opened_ms);
CREATE INDEX alarms_parent ON alarms (parent);
CREATE INDEX alarms_settling ON alarms (active, state, cleared_ms);
CREATE INDEX alarms_snoozed ON alarms (snoozed_until_ms);

-- alarm_history: every transition and action, in order.
CREATE TABLE alarm_history (
    alarm_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,           -- 0, 1, ... per alarm
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,              -- '' for the rules
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (alarm_id, seq)
);

-- channels: where notifications go. url and secret are write-only.
CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,            -- webhook, email, dingtalk, wecom, feishu, slack
    url           TEXT NOT NULL DEFAULT '',
    recipients    TEXT NOT NULL DEFAULT '', -- e-mail addresses, comma-separated
    secret        TEXT NOT NULL DEFAULT '',
    language      TEXT NOT NULL DEFAULT 'en', -- of its messages: en, zh-CN
    enabled       BOOLEAN NOT NULL,
    rate_per_hour INTEGER NOT NULL,
    created_ms    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_ms    BIGINT NOT NULL
);
CREATE UNIQUE INDEX channels_name ON channels (tenant, name);

-- notification_routes: which alarms of a tenant go to which channel.
CREATE TABLE notification_routes (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    kinds       TEXT NOT NULL DEFAULT '',   -- comma-separated; '' every kind
    urgent_only BOOLEAN NOT NULL,
    regions     TEXT NOT NULL DEFAULT '',   -- comma-separated; '' every region
    quiet_start TEXT NOT NULL DEFAULT '',   -- HH:MM in time_zone
    quiet_end   TEXT NOT NULL DEFAULT '',
    time_zone   TEXT NOT NULL DEFAULT '',
    digest      BOOLEAN NOT NULL,
    digest_at   TEXT NOT NULL DEFAULT '',
    resolved    BOOLEAN NOT NULL,
    enabled     BOOLEAN NOT NULL,
    created_ms  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE INDEX notification_routes_tenant ON notification_routes (tenant);

-- notifications: the outbox. A row is written with the alarm transition
-- that causes it and delivered at least once; id is what receivers
-- deduplicate by.
CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    alarm_id    TEXT NOT NULL DEFAULT '',
    event       TEXT NOT NULL,              -- raised, resolved, digest, summary, test
    body        TEXT NOT NULL,              -- posfleet.Alarm as JSON at the transition
    state       TEXT NOT NULL,              -- pending, held, sent, failed, suppressed, bundled
    created_ms  BIGINT NOT NULL,
    due_ms      BIGINT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    sent_ms     BIGINT NOT NULL DEFAULT 0,
    bundle      TEXT NOT NULL DEFAULT ''    -- the digest or summary that carried it
);
CREATE INDEX notifications_due ON notifications (state, due_ms);
CREATE INDEX notifications_channel ON notifications (channel_id, state, sent_ms);
CREATE INDEX notifications_alarm ON notifications (alarm_id);

-- +goose Down
DROP TABLE notifications;
DROP TABLE notification_routes;
DROP TABLE channels;
DROP TABLE alarm_history;
DROP TABLE alarms;

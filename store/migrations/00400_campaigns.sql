-- +goose Up
-- Firmware campaigns (package campaign): a campaign, its
-- terminals and their progress, its timeline, and the KPI counters of
-- both cohorts when each wave's soak started. Written by the holder of
-- the health lease (the runner) and by any web replica (create and the
-- operators' actions, each one transaction checked by version).

CREATE TABLE campaigns (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    model         TEXT NOT NULL,
    spec          TEXT NOT NULL,            -- posfleet.CampaignSpec as JSON
    state         TEXT NOT NULL,            -- posfleet.CampaignState
    wave          INTEGER NOT NULL,         -- index of the current wave
    waves         TEXT NOT NULL,            -- per wave: started_ms, done_ms (JSON)
    soak_from_ms  BIGINT NOT NULL DEFAULT 0,
    soak_until_ms BIGINT NOT NULL DEFAULT 0,
    reason        TEXT NOT NULL DEFAULT '',
    held_by       TEXT NOT NULL DEFAULT '', -- why paused: 'gate' or 'operator'
    gates         TEXT NOT NULL DEFAULT '[]', -- []posfleet.GateResult as JSON
    created_by    TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 0 -- bumped by every change
);
CREATE INDEX campaigns_tenant ON campaigns (tenant, created_ms);
CREATE INDEX campaigns_state ON campaigns (state);

-- campaign_terminals: every terminal a campaign chose, its wave and where
-- it is; the update command sent (command_id, also in commands) and, for
-- a rollback, the command that returns it to from_version.
CREATE TABLE campaign_terminals (
    campaign      TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    terminal      TEXT NOT NULL,
    wave          INTEGER NOT NULL,
    ord           INTEGER NOT NULL,         -- order of sending within the campaign
    state         TEXT NOT NULL,            -- posfleet.CampaignTerminalState
    from_version  TEXT NOT NULL,
    command_id    TEXT NOT NULL DEFAULT '',
    sent_ms       BIGINT NOT NULL DEFAULT 0,
    done_ms       BIGINT NOT NULL DEFAULT 0,
    detail        TEXT NOT NULL DEFAULT '',
    rollback_id   TEXT NOT NULL DEFAULT '',
    rollback_ms   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, terminal)
);
CREATE INDEX campaign_terminals_state ON campaign_terminals (campaign, state, wave);
CREATE INDEX campaign_terminals_terminal ON campaign_terminals (tenant, terminal);

-- campaign_events: the timeline.
CREATE TABLE campaign_events (
    campaign   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    at_ms      BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    wave       INTEGER NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (campaign, seq)
);

-- campaign_soak: the KPI counters (posfleet.KPICounts as JSON) of each
-- terminal of a wave's two cohorts when its soak started: the terminals
-- the wave updated ('updated') and the baseline of the same model not
-- updated yet ('baseline'). The gate compares their growth over the soak.
CREATE TABLE campaign_soak (
    campaign   TEXT NOT NULL,
    wave       INTEGER NOT NULL,
    terminal   TEXT NOT NULL,
    cohort     TEXT NOT NULL,
    kpi        TEXT NOT NULL,
    PRIMARY KEY (campaign, wave, terminal)
);

-- +goose Down
DROP TABLE campaign_soak;
DROP TABLE campaign_events;
DROP TABLE campaign_terminals;
DROP TABLE campaigns;

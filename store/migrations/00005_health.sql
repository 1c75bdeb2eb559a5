-- +goose Up
-- The health engine's view, published by the holder of the health lease
-- (transitions at once, in batches; the rest every few seconds) and read
-- by every web replica. The engine's per-message windows stay in its
-- memory and its snapshot; this is what users see.

-- terminal_state: one row per terminal the engine knows (heard from or
-- provisioned), what a list shows, plus the terminal page in full.
CREATE TABLE terminal_state (
    tenant          TEXT NOT NULL,
    terminal        TEXT NOT NULL,
    online          BOOLEAN NOT NULL,
    never_connected BOOLEAN NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    model           TEXT NOT NULL,
    firmware        TEXT NOT NULL,
    serial          TEXT NOT NULL,
    merchant        TEXT NOT NULL,
    region          TEXT NOT NULL,
    flags           TEXT NOT NULL,          -- raised flag names, comma-separated, FlagSpecs order
    work_priority   INTEGER NOT NULL,       -- health.WorkItem.Priority; 0: not on the work list
    work            TEXT NOT NULL,          -- health.WorkItem as JSON, '' when not on it
    health          TEXT NOT NULL,          -- health.TerminalHealth as JSON
    updated_ms      BIGINT NOT NULL,
    PRIMARY KEY (tenant, terminal)
);
CREATE INDEX terminal_state_work ON terminal_state (tenant, work_priority);
CREATE INDEX terminal_state_model ON terminal_state (tenant, model, firmware);

-- terminal_flags: each terminal's raised flags, with evidence and since.
CREATE TABLE terminal_flags (
    tenant      TEXT NOT NULL,
    terminal    TEXT NOT NULL,
    flag        TEXT NOT NULL,
    since_ms    BIGINT NOT NULL,
    urgent      BOOLEAN NOT NULL,
    evidence    TEXT NOT NULL,              -- the flag's typed evidence as JSON
    PRIMARY KEY (tenant, terminal, flag)
);
CREATE INDEX terminal_flags_flag ON terminal_flags (tenant, flag, terminal);

-- flag_events: the history of transitions, raised and cleared, and by what
-- ('' for the engine's rules, else the user whose visit cleared it).
CREATE TABLE flag_events (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    terminal    TEXT NOT NULL,
    flag        TEXT NOT NULL,
    raised      BOOLEAN NOT NULL,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    evidence    TEXT NOT NULL
);
CREATE INDEX flag_events_terminal ON flag_events (tenant, terminal, at_ms);
CREATE INDEX flag_events_at ON flag_events (at_ms);

-- incidents: fleet-wide host outages, open and closed.
CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    open        BOOLEAN NOT NULL,
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    body        TEXT NOT NULL               -- health.Incident as JSON
);
CREATE INDEX incidents_tenant ON incidents (tenant, open, start_ms);

-- fleet_views: per tenant ('' for all), what is computed over the whole
-- fleet: health.FleetSummary and the suspect-firmware findings, as JSON.
CREATE TABLE fleet_views (
    tenant      TEXT NOT NULL,
    view        TEXT NOT NULL,              -- 'summary', 'suspect_firmware'
    body        TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, view)
);

-- leases: one holder per name at a time (the health role's writer).
-- fence grows with every new holder; a write carries it, so a holder that
-- lost the lease and has not noticed yet cannot overwrite the new one's.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    fence       BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE fleet_views;
DROP TABLE incidents;
DROP TABLE flag_events;
DROP TABLE terminal_flags;
DROP TABLE terminal_state;

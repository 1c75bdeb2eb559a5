-- +goose Up
-- The job sheet's keys as columns of the health view (healthview.Reader
-- WorkKeys): a work item's site and urgency next to its region and
-- priority, in covering indexes, so that ordering a large work list by
-- region and site reads an index, not every item's JSON. work_site is
-- NULL until the publisher writes the row again (it publishes everything
-- when it takes the lease, so at the first start after this migration);
-- the Reader reads the JSON while any row on the work list has none.
ALTER TABLE terminal_state ADD COLUMN work_site TEXT;
ALTER TABLE terminal_state ADD COLUMN work_urgent BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX terminal_state_work_keys ON terminal_state (tenant, work_priority, terminal, region, work_site, work_urgent) WHERE work_priority > 0;
CREATE INDEX terminal_state_work_keys_any_tenant ON terminal_state (work_priority, tenant, terminal, region, work_site, work_urgent) WHERE work_priority > 0;

-- +goose Down
DROP INDEX terminal_state_work_keys_any_tenant;
DROP INDEX terminal_state_work_keys;
ALTER TABLE terminal_state DROP COLUMN work_urgent;
ALTER TABLE terminal_state DROP COLUMN work_site;

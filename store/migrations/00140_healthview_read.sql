-- +goose Up
-- Indexes of the web replicas' reads of the health view (healthview.Reader)
-- for a user of every tenant (an administrator), whose queries name no
-- tenant: the terminals with a flag, and the work list.
CREATE INDEX terminal_flags_any_tenant ON terminal_flags (flag, tenant, terminal);
CREATE INDEX terminal_state_work_any_tenant ON terminal_state (work_priority, tenant, terminal) WHERE work_priority > 0;

-- +goose Down
DROP INDEX terminal_state_work_any_tenant;
DROP INDEX terminal_flags_any_tenant;

-- +goose Up
-- audit_log: who did what, when, from where (PCI DSS 10.2), append-only:
-- rows are inserted, and deleted only by retention (--audit-retention).
-- Written by whichever process took the request or ran the CLI command.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,              -- user or token name, cli:<os user>
    actor_kind  TEXT NOT NULL,              -- user, token, system
    tenant      TEXT NOT NULL DEFAULT '',   -- the tenant it concerned, '' for global
    action      TEXT NOT NULL,              -- sign_in, command, policy_change, ...
    target      TEXT NOT NULL DEFAULT '',   -- terminal ref, user name, channel ID, ...
    detail      TEXT NOT NULL DEFAULT '',   -- what changed; never a secret
    remote      TEXT NOT NULL DEFAULT '',   -- client address
    outcome     TEXT NOT NULL               -- ok, or the error kind
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, at_ms);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_actor ON audit_log (actor, at_ms);

-- +goose Down
DROP TABLE audit_log;

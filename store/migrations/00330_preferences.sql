-- +goose Up
-- Language and time: a user's language ('en', 'zh-CN'; '' is
-- the browser's choice) and IANA time zone ('' is its tenant's); a
-- tenant's default time zone and language for its users and its mail.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
CREATE TABLE tenant_settings (
    tenant      TEXT PRIMARY KEY,
    language    TEXT NOT NULL DEFAULT '',
    time_zone   TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE tenant_settings;
ALTER TABLE users DROP COLUMN time_zone;
ALTER TABLE users DROP COLUMN language;

-- +goose Up
-- Roles: a user's role and, for a crew, its regions
-- (comma-separated); an API token's scopes (comma-separated: read, act,
-- provision, admin). Existing rows keep working as before: an empty role
-- is an administrator for a user of tenant '*' and an operator for a
-- tenant's user (what they could do before roles), and a token with no
-- scopes has every scope its creator's role allows.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN regions TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE api_tokens DROP COLUMN scopes;
ALTER TABLE users DROP COLUMN regions;
ALTER TABLE users DROP COLUMN role;

-- +goose Up
-- The crew's job sheet: how to reach and find a terminal's shop, from the
-- optional provisioning columns (PROTOCOL.md §4). '' when not provisioned:
-- files without the columns import as before.
ALTER TABLE terminals ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE terminals ADD COLUMN contact TEXT NOT NULL DEFAULT '';
ALTER TABLE terminals ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE terminals ADD COLUMN opening_hours TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE terminals DROP COLUMN opening_hours;
ALTER TABLE terminals DROP COLUMN phone;
ALTER TABLE terminals DROP COLUMN contact;
ALTER TABLE terminals DROP COLUMN address;

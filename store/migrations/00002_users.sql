-- +goose Up
-- (placeholder: filled by the 00002_users work)
SELECT 1;

-- +goose Down
SELECT 1;

-- +goose Up
-- (placeholder: filled by the 00003_terminals work)
SELECT 1;

-- +goose Down
SELECT 1;

package server

import (
	"context"
	"path/filepath"

	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store"
)

// RegistryOptions completes opts for the registry in dataDir: terminals
// verified once, or given their secret by an import, connect again without
// argon2id after a restart (see registry.Options.CacheKeyFile).
func RegistryOptions(dataDir string, opts registry.Options) registry.Options {
	if opts.CacheKeyFile == "" {
		opts.CacheKeyFile = filepath.Join(dataDir, "credential-cache.key")
	}
	return opts
}

// OpenRegistry opens the terminal registry in db for dataDir, as `posfleet
// serve` and the commands do: a previous release's registry.db in dataDir
// is imported first (once per database, see registry.ImportFile).
func OpenRegistry(ctx context.Context, db *store.DB, dataDir string, opts registry.Options) (*registry.Registry, error) {
	opts = RegistryOptions(dataDir, opts)
	if _, err := registry.ImportFile(ctx, db, filepath.Join(dataDir, registry.LegacyFile), opts.CacheKeyFile, opts.Logger); err != nil {
		return nil, err
	}
	return registry.Open(ctx, db, opts)
}

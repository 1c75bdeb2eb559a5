package server

import (
	"path/filepath"

	"github.com/posfleet/posfleet/registry"
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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/store"
)

// TerminalsCmd groups the provisioning commands.
type TerminalsCmd struct {
	Import TerminalsImportCmd `cmd:"" help:"Provision terminals from a CSV file (tenant,terminal,model,merchant,site,region,lat,lon[,secret])."`
	List   TerminalsListCmd   `cmd:"" help:"List provisioned terminals."`
}

// TerminalsImportCmd provisions terminals from a CSV file.
type TerminalsImportCmd struct {
	File       string `arg:"" help:"Provisioning CSV file." type:"existingfile"`
	SecretsOut string `help:"Where to write the generated secrets of new terminals (CSV tenant,terminal,secret; created with mode 0600, never overwritten)." default:"secrets.csv" type:"path"`
}

// Run imports the file: every line is checked first and nothing is applied
// when any line is bad; the secrets file is written before the database
// commits, so a terminal never exists without its secret on disk. It works
// beside a running server, which knows the new terminals within its
// --registry-sync-interval.
func (cmd *TerminalsImportCmd) Run(ctx context.Context, g *Globals) error {
	f, err := os.Open(cmd.File)
	if err != nil {
		return err
	}
	defer f.Close()
	reg, closeReg, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeReg()
	wrote := false
	res, err := reg.Import(ctx, f, func(creds []registry.Credential) error {
		if len(creds) == 0 {
			return nil
		}
		out, err := os.OpenFile(cmd.SecretsOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("secrets file %s exists; move it away or name another with --secrets-out", cmd.SecretsOut)
			}
			return fmt.Errorf("secrets file: %w", err)
		}
		if err := registry.WriteCredentials(out, creds); err != nil {
			out.Close()
			os.Remove(cmd.SecretsOut)
			return fmt.Errorf("secrets file: %w", err)
		}
		if err := out.Sync(); err != nil {
			out.Close()
			os.Remove(cmd.SecretsOut)
			return fmt.Errorf("secrets file: %w", err)
		}
		wrote = true
		return out.Close()
	})
	if err != nil {
		if wrote {
			os.Remove(cmd.SecretsOut) // the registry did not commit: those secrets mean nothing
		}
		return fmt.Errorf("import %s: %w", cmd.File, err)
	}
	fmt.Fprintf(g.Stdout, "%s: %d added, %d updated, %d unchanged\n", cmd.File, res.Added, res.Updated, res.Unchanged)
	auditCLI(ctx, g, "import", "", cmd.File, map[string]any{"added": res.Added, "updated": res.Updated, "unchanged": res.Unchanged})
	if wrote {
		fmt.Fprintf(g.Stdout, "secrets of %d terminals written to %s (keep it safe; it is not shown again)\n", len(res.Credentials), cmd.SecretsOut)
	}
	return nil
}

// TerminalsListCmd lists provisioned terminals.
type TerminalsListCmd struct {
	Tenant string `help:"Only this tenant's terminals."`
}

// Run prints the terminals as a table.
func (cmd *TerminalsListCmd) Run(ctx context.Context, g *Globals) error {
	reg, closeReg, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeReg()
	ts, err := reg.List(ctx, cmd.Tenant)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tTERMINAL\tMODEL\tMERCHANT\tSITE\tREGION")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Tenant, t.Terminal, t.Model, t.Merchant, t.Site, t.Region)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "%d terminals\n", len(ts))
	return nil
}

// openRegistry opens the registry in the control-plane database for a
// command, beside a running server if there is one: the server knows of
// the change within its sync interval. A previous release's registry.db in
// the data directory is imported first, as `posfleet serve` would.
func openRegistry(ctx context.Context, g *Globals) (*registry.Registry, func(), error) {
	if err := os.MkdirAll(g.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := store.Open(ctx, store.URLFor(g.DataDir, g.DatabaseURL))
	if err != nil {
		return nil, nil, err
	}
	opts := registry.DefaultOptions()
	// A command reads the terminals once and writes; it has nothing to
	// keep in sync.
	opts.SyncInterval = -1
	opts.Logger = g.Logger
	reg, err := server.OpenRegistry(ctx, db, g.DataDir, opts)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return reg, func() { reg.Close(); db.Close() }, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/server"
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
// when any line is bad; the secrets file is written before the registry
// commits, so a terminal never exists without its secret on disk.
func (cmd *TerminalsImportCmd) Run(ctx context.Context, g *Globals) error {
	f, err := os.Open(cmd.File)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(g.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	reg, err := openRegistry(g)
	if err != nil {
		return err
	}
	defer reg.Close()
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
	reg, err := openRegistry(g)
	if err != nil {
		return err
	}
	defer reg.Close()
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

// openRegistry opens the registry for a command, and says what to do when
// a running server holds it (bbolt files have one process at a time).
func openRegistry(g *Globals) (*registry.Registry, error) {
	reg, err := registry.Open(filepath.Join(g.DataDir, "registry.db"), server.RegistryOptions(g.DataDir, registry.DefaultOptions()))
	if errors.Is(err, registry.ErrInUse) {
		return nil, fmt.Errorf("%w\n(posfleet serve holds it: stop it, or provision through the API: curl -H \"Authorization: Bearer $TOKEN\" --data-binary @fleet.csv http://HOST:8080/api/v1/terminals/import)", err)
	}
	return reg, err
}

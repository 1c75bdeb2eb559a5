package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store"
)

// UsersCmd manages the people who sign in to the web UI and the API.
type UsersCmd struct {
	Add     UsersAddCmd     `cmd:"" help:"Add a user of one tenant (or --admin for all). The password is read from POSFLEET_PASSWORD or standard input, never from a flag."`
	List    UsersListCmd    `cmd:"" help:"List users."`
	Passwd  UsersPasswdCmd  `cmd:"" help:"Set a user's password (from POSFLEET_PASSWORD or standard input); the user's sessions end."`
	Disable UsersDisableCmd `cmd:"" help:"Disable a user: it can no longer sign in and its sessions end at once."`
	Enable  UsersEnableCmd  `cmd:"" help:"Enable a disabled user again (its old sessions stay ended)."`
	Delete  UsersDeleteCmd  `cmd:"" help:"Delete a user; its sessions end at once."`
	Role    UsersRoleCmd    `cmd:"" help:"Set a user's role (and a crew's regions); it counts from the user's next request."`
}

// UsersDisableCmd disables a user.
type UsersDisableCmd struct {
	Name string `arg:"" help:"User name."`
}

// UsersEnableCmd enables a user.
type UsersEnableCmd struct {
	Name string `arg:"" help:"User name."`
}

// UsersDeleteCmd deletes a user.
type UsersDeleteCmd struct {
	Name string `arg:"" help:"User name."`
}

// Run disables the user.
func (cmd *UsersDisableCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		if err := s.SetDisabled(ctx, cmd.Name, true); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "user %s disabled\n", cmd.Name)
		auditCLI(ctx, g, "user_disable", "", cmd.Name, nil)
		return nil
	})
}

// Run enables the user.
func (cmd *UsersEnableCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		if err := s.SetDisabled(ctx, cmd.Name, false); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "user %s enabled\n", cmd.Name)
		auditCLI(ctx, g, "user_enable", "", cmd.Name, nil)
		return nil
	})
}

// Run deletes the user.
func (cmd *UsersDeleteCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		if err := s.DeleteUser(ctx, cmd.Name); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "user %s deleted\n", cmd.Name)
		auditCLI(ctx, g, "user_delete", "", cmd.Name, nil)
		return nil
	})
}

// withAuth runs f on the users and tokens of the database (the SQLite
// file in the data directory, or --database-url): the same database a
// running `posfleet serve` uses, which sees every change at once.
func withAuth(ctx context.Context, g *Globals, f func(*auth.Store) error) error {
	if g.DatabaseURL == "" {
		if err := os.MkdirAll(g.DataDir, 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	db, err := store.Open(ctx, store.URLFor(g.DataDir, g.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()
	opts := auth.DefaultOptions()
	opts.DataDir, opts.Logger = g.DataDir, g.Logger
	s, err := auth.New(ctx, db, opts)
	if err != nil {
		return err
	}
	return f(s)
}

// TokensCmd manages API tokens.
type TokensCmd struct {
	Create TokensCreateCmd `cmd:"" help:"Create an API token for one tenant (or --admin for all); it is printed once."`
	List   TokensListCmd   `cmd:"" help:"List tokens (not their secrets)."`
	Revoke TokensRevokeCmd `cmd:"" help:"Revoke a token by its ID."`
}

// UsersAddCmd adds a user.
type UsersAddCmd struct {
	Name   string `arg:"" help:"User name."`
	Tenant string `help:"The tenant the user sees." xor:"scope" required:""`
	Admin  bool   `help:"The user sees every tenant." xor:"scope" required:""`
	// Role and Regions: see posfleet.Role; empty keeps the rule of users
	// made before roles.
	Role    string   `help:"administrator (with --admin), tenant_admin, operator, crew or viewer; empty: administrator with --admin, operator with --tenant, as before roles."`
	Regions []string `help:"A crew's regions, comma-separated." sep:","`
}

// UsersPasswdCmd sets a password.
type UsersPasswdCmd struct {
	Name string `arg:"" help:"User name."`
}

// UsersListCmd lists users.
type UsersListCmd struct{}

// TokensCreateCmd creates a token.
type TokensCreateCmd struct {
	Name   string `arg:"" help:"What the token is for, e.g. grafana."`
	Tenant string `help:"The tenant the token sees." xor:"scope" required:""`
	Admin  bool   `help:"The token sees every tenant." xor:"scope" required:""`
	// Scopes limit the token; none is every scope.
	Scopes []string `help:"Limit the token to these scopes, comma-separated: read, act, provision, admin (default: all)." sep:","`
	// Description says more than the name: who runs it, where it lives.
	Description string `help:"What the token is for, in a sentence (shown by tokens list and the administrators' page)."`
}

// TokensListCmd lists tokens.
type TokensListCmd struct{}

// TokensRevokeCmd revokes a token.
type TokensRevokeCmd struct {
	ID string `arg:"" help:"Token ID, as listed."`
}

func scope(tenant string, admin bool) string {
	if admin {
		return auth.AllTenants
	}
	return tenant
}

// readPassword takes the password from POSFLEET_PASSWORD or the first line
// of standard input: a flag would show it in process listings.
func readPassword() (string, error) {
	if p, ok := os.LookupEnv("POSFLEET_PASSWORD"); ok {
		return p, nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no password: set POSFLEET_PASSWORD or pipe it on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// Run adds the user.
func (cmd *UsersAddCmd) Run(ctx context.Context, g *Globals) error {
	pw, err := readPassword()
	if err != nil {
		return err
	}
	return withAuth(ctx, g, func(s *auth.Store) error {
		u := posfleet.User{Name: cmd.Name, Tenant: scope(cmd.Tenant, cmd.Admin), Role: posfleet.Role(cmd.Role), Regions: cmd.Regions}
		if err := s.NewUser(ctx, u, pw); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "user %s added (tenant %s, role %s)\n", cmd.Name, u.Tenant, posfleet.Principal{Tenant: u.Tenant, Role: u.Role}.EffectiveRole())
		auditCLI(ctx, g, "user_create", u.Tenant, cmd.Name, map[string]any{"tenant": u.Tenant, "role": string(u.Role)})
		return nil
	})
}

// Run sets the password.
func (cmd *UsersPasswdCmd) Run(ctx context.Context, g *Globals) error {
	pw, err := readPassword()
	if err != nil {
		return err
	}
	return withAuth(ctx, g, func(s *auth.Store) error {
		if err := s.SetPassword(ctx, cmd.Name, pw); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "password of %s changed\n", cmd.Name)
		auditCLI(ctx, g, "user_password", "", cmd.Name, nil)
		return nil
	})
}

// Run lists the users.
func (cmd *UsersListCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		users, err := s.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTENANT\tCREATED\tSTATE\tROLE\tREGIONS")
		for _, u := range users {
			state := "enabled"
			if u.Disabled {
				state = "disabled"
			}
			role := posfleet.Principal{Tenant: u.Tenant, Role: u.Role}.EffectiveRole()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Tenant, u.Created.Format("2006-01-02 15:04"), state, role, strings.Join(u.Regions, ","))
		}
		return tw.Flush()
	})
}

// Run creates the token and prints it once.
func (cmd *TokensCreateCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		tok, _, err := s.NewToken(ctx, auth.Token{Name: cmd.Name, Description: cmd.Description, Tenant: scope(cmd.Tenant, cmd.Admin), CreatedBy: "cli", Scopes: cmd.Scopes})
		if err != nil {
			return err
		}
		fmt.Fprintln(g.Stdout, tok)
		fmt.Fprintln(g.Stderr, "keep this token: it is not shown again. Use it as: Authorization: Bearer <token>")
		auditCLI(ctx, g, "token_create", scope(cmd.Tenant, cmd.Admin), cmd.Name, map[string]any{"tenant": scope(cmd.Tenant, cmd.Admin), "description": posfleet.Redact(cmd.Description)})
		return nil
	})
}

// Run lists the tokens.
func (cmd *TokensListCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		toks, err := s.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTENANT\tCREATED\tBY\tSCOPES\tDESCRIPTION")
		for _, t := range toks {
			scopes := strings.Join(t.Scopes, ",")
			if scopes == "" {
				scopes = "all"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Tenant, t.Created.Format("2006-01-02 15:04"), t.CreatedBy, scopes, t.Description)
		}
		return tw.Flush()
	})
}

// Run revokes the token.
func (cmd *TokensRevokeCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		if err := s.RevokeToken(ctx, cmd.ID); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "token %s revoked\n", cmd.ID)
		auditCLI(ctx, g, "token_revoke", "", cmd.ID, nil)
		return nil
	})
}

// UsersRoleCmd sets a user's role.
type UsersRoleCmd struct {
	Name    string   `arg:"" help:"User name."`
	Role    string   `arg:"" help:"administrator, tenant_admin, operator, crew or viewer."`
	Regions []string `help:"A crew's regions, comma-separated." sep:","`
}

// Run sets the role.
func (cmd *UsersRoleCmd) Run(ctx context.Context, g *Globals) error {
	return withAuth(ctx, g, func(s *auth.Store) error {
		if err := s.SetRole(ctx, cmd.Name, posfleet.Role(cmd.Role), cmd.Regions); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "role of %s set to %s\n", cmd.Name, cmd.Role)
		return nil
	})
}

// Command posfleet is the posfleet server and its administration CLI:
//
//	posfleet serve                      broker + collector + web in one process
//	posfleet terminals import FILE.csv  provision terminals (PROTOCOL §4)
//	posfleet terminals list             list provisioned terminals
//	posfleet users add NAME --tenant T  a user of the web UI and API
//	posfleet tokens create NAME --tenant T  an API token
//
// Every flag can also come from the environment (POSFLEET_…) or a YAML file
// (--config); flags win over the environment, which wins over the file.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // notification routes' quiet hours and digests in the tenant's zone, also where the host has no zoneinfo (containers)

	"github.com/alecthomas/kong"
)

// CLI is the whole command line.
type CLI struct {
	Config      kong.ConfigFlag `help:"YAML configuration file (keys are the flag names, e.g. 'serve: {mqtt-addr: \":1883\"}')." env:"POSFLEET_CONFIG" type:"existingfile" placeholder:"FILE"`
	DataDir     string          `help:"Directory for the registry, the spool and broker sessions." default:"data" env:"POSFLEET_DATA_DIR" type:"path"`
	DatabaseURL string          `name:"database-url" help:"Control-plane database: postgres://user@host/db for a cluster; empty means the SQLite file posfleet.db in --data-dir. A password belongs in the environment, not on the command line." env:"POSFLEET_DATABASE_URL" placeholder:"URL"`
	LogLevel    string          `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error" env:"POSFLEET_LOG_LEVEL"`

	Serve     ServeCmd     `cmd:"" help:"Run the server: MQTT broker, collector and web."`
	Terminals TerminalsCmd `cmd:"" help:"Provision and list terminals."`
	Users     UsersCmd     `cmd:"" help:"Manage users of the web UI and API."`
	Tokens    TokensCmd    `cmd:"" help:"Manage API tokens."`
	Mosquitto MosquittoCmd `cmd:"" help:"Write Mosquitto's access configuration from the registry (external broker mode)."`
}

// Globals are what every command gets from the top-level flags.
type Globals struct {
	DataDir string
	// DatabaseURL is --database-url ("" means the SQLite file in DataDir).
	DatabaseURL string
	Logger      *slog.Logger
	Stdout      io.Writer
	Stderr      io.Writer
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// exitRequest carries kong's wish to exit (after --help) out of Parse.
type exitRequest int

func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = int(e)
		}
	}()
	cli, kctx, err := parse(args, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "posfleet:", err)
		return 2
	}
	if kctx.Command() == "" {
		return 0
	}
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cli.LogLevel]
	g := &Globals{
		DataDir:     cli.DataDir,
		DatabaseURL: cli.DatabaseURL,
		Logger:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Stdout:      stdout,
		Stderr:      stderr,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(g); err != nil {
		fmt.Fprintln(stderr, "posfleet:", err)
		return 1
	}
	return 0
}

// parse reads the command line, the environment and the --config file.
func parse(args []string, stdout, stderr io.Writer) (*CLI, *kong.Context, error) {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("posfleet"),
		kong.Description("Monitor for fleets of card-payment terminals."),
		kong.UsageOnError(),
		kong.Configuration(yamlLoader),
		defaultVars(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
	)
	if err != nil {
		return nil, nil, err
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return nil, nil, err
	}
	return &cli, kctx, nil
}

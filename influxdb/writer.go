package influxdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unsafe"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/posfleet/posfleet/collector"
)

// Config says where the time-series store is. Against InfluxDB 2.x it is
// an org, a bucket and a token; against InfluxDB 1.8 (v2 API compatibility
// endpoints) the bucket is "database/retention-policy", the org is ignored
// and the token is "user:password" (or empty without auth).
type Config struct {
	URL    string
	Org    string
	Bucket string
	Token  string
	// Timeout bounds one HTTP request to InfluxDB.
	Timeout time.Duration
}

// Store is the InfluxDB adapter: it writes line-protocol batches through the
// blocking write API (so that "accepted by InfluxDB" is an HTTP answer this
// process saw, not a promise of the client's background queue) and runs
// Flux queries.
type Store struct {
	cfg    Config
	client influxdb2.Client
	write  api.WriteAPIBlocking
	query  api.QueryAPI
}

var _ collector.PointWriter = (*Store)(nil)

// Open returns a Store for cfg. It does not contact InfluxDB; Ping does.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultConfig().Timeout
	}
	opts := influxdb2.DefaultOptions().
		SetHTTPRequestTimeout(uint(cfg.Timeout / time.Second)).
		SetPrecision(time.Nanosecond).
		// posfleet logs through slog; the client's own logger would print
		// to stderr behind its back.
		SetLogLevel(0)
	c := influxdb2.NewClientWithOptions(strings.TrimRight(cfg.URL, "/"), cfg.Token, opts)
	return &Store{
		cfg:    cfg,
		client: c,
		write:  c.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		query:  c.QueryAPI(cfg.Org),
	}, nil
}

// WriteLines writes one batch of newline-terminated lines. A refusal of the
// content (HTTP 400, 413, 422) is a *collector.BatchRejectedError; anything
// else (connection refused, 5xx, 429, 401, 404 bucket) is passing and the
// collector retries.
//
// The request body is lines itself, not a copy (a batch is a few MiB): the
// collector reuses a batch's buffer only once a write of it returned nil.
func (s *Store) WriteLines(ctx context.Context, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	// The client takes a string; it only reads it (strings.NewReader).
	err := s.write.WriteRecord(ctx, unsafe.String(unsafe.SliceData(lines), len(lines)))
	if err == nil {
		return nil
	}
	var he *ihttp.Error
	if errors.As(err, &he) {
		switch he.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return &collector.BatchRejectedError{Err: fmt.Errorf("influxdb: write: %w", err)}
		}
	}
	return fmt.Errorf("influxdb: write: %w", err)
}

// Ping checks that InfluxDB answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("influxdb: ping %s: %w", s.cfg.URL, err)
	}
	if !ok {
		return fmt.Errorf("influxdb: ping %s: not ready", s.cfg.URL)
	}
	return nil
}

// Bucket returns the configured bucket, for Flux queries.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// Query runs a Flux query and returns its records as maps of column to value.
func (s *Store) Query(ctx context.Context, flux string) ([]map[string]any, error) {
	res, err := s.query.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("influxdb: query: %w", err)
	}
	defer res.Close()
	var out []map[string]any
	for res.Next() {
		out = append(out, res.Record().Values())
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("influxdb: query: %w", err)
	}
	return out, nil
}

// Close releases the client's connections.
func (s *Store) Close() { s.client.Close() }

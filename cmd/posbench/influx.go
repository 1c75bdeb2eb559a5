package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// influx is the one InfluxDB server of a run. Every system and repetition
// writes to a database of its own, so that counts never mix.
type influx struct {
	srv        *influxtest.Server
	http       *http.Client
	influxdPID int
}

// bucket is the v2 API bucket of database db on InfluxDB 1.8.
func bucket(db string) string { return db + "/autogen" }

// createDB creates database db (1.8's v2 API cannot create buckets).
func (in *influx) createDB(db string) error { return in.srv.CreateDatabase(db) }

// newHTTPClient is a client with enough idle connections for the
// concurrent writers.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// pid finds influxd's process ID by its configuration file on the command
// line (influxtest does not export it); 0 when not found.
func (in *influx) pid() int {
	if in.influxdPID != 0 {
		return in.influxdPID
	}
	conf := filepath.Join(in.srv.Dir, "influxd.conf")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(conf)) {
			in.influxdPID = n
			return n
		}
	}
	return 0
}

// pointsWritten returns how many points InfluxDB has taken into db's shards
// since it started (the writePointsOk of SHOW STATS): a point counts once
// its write returned, which is when a query sees it. It reads in-memory
// counters, so polling it costs InfluxDB next to nothing, where a count
// query reads every point again (50-300 ms for half a million, ten times a
// second). It counts every point written, not only messages (posfleet's
// event measurements too, and a point written twice twice): the latency
// phase checks it against countSince at its end.
func (in *influx) pointsWritten(ctx context.Context, db string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := in.srv.URL + "/query?" + url.Values{"q": {"SHOW STATS FOR 'shard'"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := in.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("influxd stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("influxd stats: %s", resp.Status)
	}
	return shardPointsOK(resp.Body, db)
}

// shardPointsOK sums writePointsOk over db's shards in a SHOW STATS
// answer.
func shardPointsOK(r io.Reader, db string) (int64, error) {
	var out struct {
		Results []struct {
			Series []struct {
				Tags    map[string]string `json:"tags"`
				Columns []string          `json:"columns"`
				Values  [][]json.Number   `json:"values"`
			} `json:"series"`
			Error string `json:"error"`
		} `json:"results"`
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return 0, fmt.Errorf("influxd stats: %w", err)
	}
	var n int64
	for _, res := range out.Results {
		if res.Error != "" {
			return 0, fmt.Errorf("influxd stats: %s", res.Error)
		}
		for _, s := range res.Series {
			if s.Tags["database"] != db {
				continue
			}
			col := slices.Index(s.Columns, "writePointsOk")
			if col < 0 {
				return 0, errors.New("influxd stats: no writePointsOk")
			}
			for _, row := range s.Values {
				if col < len(row) {
					v, err := row[col].Int64()
					if err != nil {
						return 0, fmt.Errorf("influxd stats: writePointsOk %q: %w", row[col], err)
					}
					n += v
				}
			}
		}
	}
	return n, nil
}

// count returns how many points of db carry the field seq: every uplink
// message but status does, in posfleet's schema and in Telegraf's.
func (in *influx) count(ctx context.Context, db string) (int64, error) {
	return in.countSince(ctx, db, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
}

// countSince counts the points of db with the field seq from since on.
func (in *influx) countSince(ctx context.Context, db string, since time.Time) (int64, error) {
	q := fmt.Sprintf(`from(bucket:%q) |> range(start: %s) |> filter(fn: (r) => r._field == "seq") |> group() |> count()`, bucket(db), since.UTC().Format(time.RFC3339Nano))
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rows, err := in.srv.Flux(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	n, err := strconv.ParseInt(rows[0]["_value"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("count %s: %q: %w", db, rows[0]["_value"], err)
	}
	return n, nil
}

// write sends one batch of line protocol through the v2 write API.
func (in *influx) write(ctx context.Context, db string, lines []byte) error {
	u := in.srv.URL + "/api/v2/write?precision=ns&bucket=" + url.QueryEscape(bucket(db))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(lines))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := in.http.Do(req)
	if err != nil {
		return fmt.Errorf("write %s: %w", db, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("write %s: %s: %s", db, resp.Status, body)
	}
	return nil
}

// waitStored polls the count of db every poll until it reaches want, or
// until it has not grown for stall, or ctx ends. It returns the last count
// and when it was first seen (the moment the last stored message became
// queryable, to the poll's resolution).
func (in *influx) waitStored(ctx context.Context, db string, want int64, poll, stall time.Duration) (int64, time.Time, error) {
	var last int64 = -1
	var lastAt, grewAt time.Time
	for {
		at := time.Now()
		n, err := in.count(ctx, db)
		if err != nil {
			return last, lastAt, err
		}
		if n != last {
			last, lastAt, grewAt = n, at, at
		}
		if n >= want {
			return n, lastAt, nil
		}
		if time.Since(grewAt) > stall {
			return n, lastAt, nil
		}
		select {
		case <-ctx.Done():
			return n, lastAt, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// ceiling writes lines (whole lines, newline-terminated) in batches of
// batch lines from writers goroutines, and returns the time all writes
// took. InfluxDB 1.8 answers a write once the points are in its WAL and
// index, so they are queryable then; the caller checks the count.
func (in *influx) ceiling(ctx context.Context, db string, lines [][]byte, batch, writers int) (time.Duration, error) {
	var batches [][]byte
	for i := 0; i < len(lines); i += batch {
		var b bytes.Buffer
		for _, l := range lines[i:min(i+batch, len(lines))] {
			b.Write(l)
		}
		batches = append(batches, b.Bytes())
	}
	next := make(chan []byte)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := in.write(ctx, db, b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for _, b := range batches {
		select {
		case next <- b:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return took, err
}

// schemaSample describes one stored heartbeat point of terminal: its
// measurement, tags and fields, to show in the results that both
// pipelines store the same information.
func (in *influx) schemaSample(ctx context.Context, db, terminal string) string {
	q := fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => (r._measurement == "hb" or r._measurement == "heartbeat") and r.terminal == %q) |> limit(n: 1)`, bucket(db), terminal)
	rows, err := in.srv.Flux(ctx, q)
	if err != nil || len(rows) == 0 {
		return ""
	}
	var fields, tags []string
	for _, r := range rows {
		fields = append(fields, r["_field"])
	}
	for k := range rows[0] {
		switch k {
		case "", "result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement":
		default:
			tags = append(tags, k)
		}
	}
	slices.Sort(fields)
	slices.Sort(tags)
	return fmt.Sprintf("%s tags=%s fields=%s", rows[0]["_measurement"], strings.Join(tags, ","), strings.Join(fields, ","))
}

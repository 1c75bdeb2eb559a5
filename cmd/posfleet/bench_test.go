package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/server"
)

// BenchmarkEndToEnd measures messages per second from 100 terminals, each
// a real MQTT client over TCP publishing QoS 1, through the broker, the
// spool (fsync per group commit) and the batch writer into a real InfluxDB:
// the clock stops when InfluxDB holds every message. Run with -benchtime=1x;
// b.N is ignored beyond that, since each run needs a fresh fleet.
//
//	go test ./cmd/posfleet -run '^$' -bench EndToEnd -benchtime 1x
func BenchmarkEndToEnd(b *testing.B) {
	const (
		terminals = 100
		perTerm   = 1000 // a heartbeat, then transactions
		inflight  = 16   // unacknowledged publishes a terminal keeps in flight
	)
	influx := influxtest.Start(b)
	srv := benchServer(b, influx, terminals)
	addr := srv.MQTTAddr().String()
	clients := make([]mqtt.Client, terminals)
	for i := range clients {
		id := fmt.Sprintf("acme:T-%04d", i+1)
		c, err := connect(addr, id, id, secretOf(i+1))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Disconnect(0)
		clients[i] = c
	}
	base := time.Now().UTC().Add(-time.Hour)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make(chan mqtt.Token, inflight)
			prefix := fmt.Sprintf("fleet/v1/acme/T-%04d/", i+1)
			for seq := 1; seq <= perTerm; seq++ {
				ts := base.Add(time.Duration(seq) * time.Second).Format(time.RFC3339)
				var topic, payload string
				if seq%10 == 1 {
					topic = prefix + "hb"
					payload = fmt.Sprintf(`{"seq":%d,"ts":%q,"uptime_s":%d,"battery_pct":80,"signal_dbm":-80,"net":"4g","host_rtt_ms":400,"paper":"ok"}`, seq, ts, seq)
				} else {
					topic = prefix + "txn"
					payload = fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"TX-%d","type":"sale","entry":"tap","currency":"CNY","amount_entered":1250,"amount_charged":1250,"result":"approved","rc":"00","host_ms":380,"receipt":"printed"}`, seq, ts, seq)
				}
				if len(window) == cap(window) {
					tok := <-window
					if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						b.Errorf("publish: %v", tok.Error())
						return
					}
				}
				window <- c.Publish(topic, 1, false, payload)
			}
			close(window)
			for tok := range window {
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					b.Errorf("publish: %v", tok.Error())
				}
			}
		}()
	}
	wg.Wait()
	acked := time.Since(start)
	total := int64(terminals * perTerm)
	ctx := context.Background()
	for {
		hb, err1 := influx.Count(ctx, "heartbeat", "seq")
		tx, err2 := influx.Count(ctx, "txn", "seq")
		if err1 != nil || err2 != nil {
			b.Fatal(err1, err2)
		}
		if hb+tx >= total {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("only %d of %d stored", hb+tx, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stored := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/acked.Seconds(), "acked_msgs/s")
	b.ReportMetric(float64(total)/stored.Seconds(), "stored_msgs/s")
	b.Logf("%d terminals, %d QoS 1 messages: all acknowledged in %v, all queryable in InfluxDB in %v", terminals, total, acked.Round(time.Millisecond), stored.Round(time.Millisecond))
}

func benchServer(b *testing.B, influx *influxtest.Server, terminals int) *server.Server {
	b.Helper()
	dir := b.TempDir()
	cfg := server.DefaultConfig(dir)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Broker.TCPAddr = "127.0.0.1:0"
	cfg.Broker.RatePerSecond = -1 // measure the pipeline, not the per-terminal limit
	cfg.Influx.URL, cfg.Influx.Bucket = influx.URL, influxtest.Bucket
	cfg.Registry.HashMemoryKiB = 64
	provision(b, filepath.Join(dir, "registry.db"), cfg.Registry, terminals)
	srv, err := server.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return srv
}

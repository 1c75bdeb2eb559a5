package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/posfleet/posfleet/server"
)

// TestEveryServeFlagReachesItsOption sets every flag of `posfleet serve`,
// one at a time, to a value other than its default and checks that exactly
// the expected fields of server.Config change. The flags are read from
// kong's model of ServeCmd, so a new flag without a case here, or one that
// reaches no option, fails the test.
func TestEveryServeFlagReachesItsOption(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := file("token", "a-long-enough-token-0123456789")
	ca := file("ca.pem", testCertPEM(t))
	source := []string{"--mqtt-source", "tcp://127.0.0.1:1"}
	cases := map[string]struct {
		base   []string // set in both runs: what the flag needs besides itself
		args   []string
		fields []string
	}{
		"mqtt-addr":                 {args: []string{"--mqtt-addr", "127.0.0.1:1"}, fields: []string{"Broker.TCPAddr"}},
		"mqtt-tls-addr":             {args: []string{"--mqtt-tls-addr", "127.0.0.1:2"}, fields: []string{"Broker.TLSAddr"}},
		"tls-cert":                  {args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, fields: []string{"Broker.CertFile", "Broker.KeyFile"}},
		"tls-key":                   {args: []string{"--tls-key", "k.pem", "--tls-cert", "c.pem"}, fields: []string{"Broker.CertFile", "Broker.KeyFile"}},
		"http-addr":                 {args: []string{"--http-addr", "127.0.0.1:3"}, fields: []string{"HTTPAddr"}},
		"http-max-connections":      {args: []string{"--http-max-connections", "7"}, fields: []string{"HTTP.MaxConns"}},
		"metrics-token-file":        {args: []string{"--metrics-token-file", token}, fields: []string{"MetricsToken"}},
		"metrics-addr":              {args: []string{"--metrics-addr", "127.0.0.1:4"}, fields: []string{"MetricsAddr"}},
		"rate-limit":                {args: []string{"--rate-limit", "3.5"}, fields: []string{"Broker.RatePerSecond"}},
		"rate-burst":                {args: []string{"--rate-burst", "77"}, fields: []string{"Broker.RateBurst"}},
		"receive-maximum":           {args: []string{"--receive-maximum", "200"}, fields: []string{"Broker.ReceiveMaximum"}},
		"influx-url":                {args: []string{"--influx-url", "http://127.0.0.1:5"}, fields: []string{"Influx.URL"}},
		"influx-org":                {args: []string{"--influx-org", "org"}, fields: []string{"Influx.Org"}},
		"influx-bucket":             {args: []string{"--influx-bucket", "b/rp"}, fields: []string{"Influx.Bucket"}},
		"influx-token-file":         {args: []string{"--influx-token-file", token}, fields: []string{"Influx.Token"}},
		"fsync":                     {args: []string{"--fsync", "interval"}, fields: []string{"Collector.Fsync"}},
		"fsync-interval":            {args: []string{"--fsync-interval", "3s"}, fields: []string{"Collector.FsyncInterval"}},
		"batch-lines":               {args: []string{"--batch-lines", "123"}, fields: []string{"Collector.BatchLines"}},
		"batch-wait":                {args: []string{"--batch-wait", "3s"}, fields: []string{"Collector.BatchWait"}},
		"influx-writers":            {args: []string{"--influx-writers", "5"}, fields: []string{"Collector.Writers"}},
		"max-spool-mib":             {args: []string{"--max-spool-mib", "3"}, fields: []string{"Collector.MaxSpoolBytes"}},
		"event-window":              {args: []string{"--event-window", "3s"}, fields: []string{"Collector.EventWindow"}},
		"max-event-sources":         {args: []string{"--max-event-sources", "33"}, fields: []string{"Collector.MaxEventKeys"}},
		"event-retention":           {args: []string{"--event-retention", "48h"}, fields: []string{"EventRetention.MaxAge"}},
		"audit-retention":           {args: []string{"--audit-retention", "17520h"}, fields: []string{"AuditRetention"}},
		"event-max-rows":            {args: []string{"--event-max-rows", "5000"}, fields: []string{"EventRetention.MaxRows"}},
		"auth-source-failures":      {args: []string{"--auth-source-failures", "3.5"}, fields: []string{"Registry.SourceFailuresPerSecond"}},
		"auth-source-burst":         {args: []string{"--auth-source-burst", "33"}, fields: []string{"Registry.SourceFailureBurst"}},
		"auth-username-failures":    {args: []string{"--auth-username-failures", "3.5"}, fields: []string{"Registry.UsernameFailuresPerSecond"}},
		"auth-username-burst":       {args: []string{"--auth-username-burst", "33"}, fields: []string{"Registry.UsernameFailureBurst"}},
		"registry-sync-interval":    {args: []string{"--registry-sync-interval", "7s"}, fields: []string{"Registry.SyncInterval"}},
		"allow-http-firmware":       {args: []string{"--allow-http-firmware"}, fields: []string{"AllowHTTPFirmware"}},
		"campaign-min-soak":         {args: []string{"--campaign-min-soak", "30s"}, fields: []string{"Campaigns.MinSoak"}},
		"secure-cookies":            {args: []string{"--secure-cookies"}, fields: []string{"SecureCookies"}},
		"thresholds":                {args: []string{"--thresholds", token}, fields: []string{"ThresholdsFile"}},
		"pprof-addr":                {args: []string{"--pprof-addr", "127.0.0.1:6"}, fields: []string{"PprofAddr"}},
		"roles":                     {args: []string{"--roles", "broker,collector"}, fields: []string{"Roles.Web"}},
		"mqtt-source":               {args: source, fields: []string{"Source.Broker", "Source.Username", "Source.ClientID"}},
		"mqtt-source-username":      {base: source, args: []string{"--mqtt-source-username", "u"}, fields: []string{"Source.Username"}},
		"mqtt-source-password-file": {base: source, args: []string{"--mqtt-source-password-file", token}, fields: []string{"Source.Password"}},
		"mqtt-source-client-prefix": {base: source, args: []string{"--mqtt-source-client-prefix", "p-"}, fields: []string{"Source.ClientID"}},
		"mqtt-source-ca-file":       {base: source, args: []string{"--mqtt-source-ca-file", ca}, fields: []string{"Source.TLS"}},
		"health-client-id":          {args: []string{"--health-client-id", "h-1"}, fields: []string{"HealthClientID"}},
		"emqx-auth-token-file":      {args: []string{"--emqx-auth-token-file", token}, fields: []string{"EMQXToken"}},
		"alarm-debounce":            {args: []string{"--alarm-debounce", "3m"}, fields: []string{"Alerting.Alarms.Debounce"}},
		"alarm-fold-grace":          {args: []string{"--alarm-fold-grace", "7s"}, fields: []string{"Alerting.Alarms.FoldGrace"}},
		"alarm-retention":           {args: []string{"--alarm-retention", "720h"}, fields: []string{"Alerting.Retention"}},
		"public-url":                {args: []string{"--public-url", "https://posfleet.example.com"}, fields: []string{"Alerting.PublicURL"}},
		"smtp-addr":                 {base: []string{"--smtp-from", "posfleet@example.com"}, args: []string{"--smtp-addr", "127.0.0.1:25"}, fields: []string{"Alerting.SMTP.Addr"}},
		"smtp-from":                 {args: []string{"--smtp-from", "ops@example.com"}, fields: []string{"Alerting.SMTP.From"}},
		"smtp-user":                 {args: []string{"--smtp-user", "ops"}, fields: []string{"Alerting.SMTP.Username"}},
		"smtp-password-file":        {args: []string{"--smtp-password-file", token}, fields: []string{"Alerting.SMTP.Password"}},
		"smtp-tls":                  {args: []string{"--smtp-tls", "none"}, fields: []string{"Alerting.SMTP.TLS"}},
		"notify-every":              {args: []string{"--notify-every", "3s"}, fields: []string{"Alerting.Dispatcher.Every"}},
		"notify-retry-max":          {args: []string{"--notify-retry-max", "2s"}, fields: []string{"Alerting.Dispatcher.RetryMax", "Alerting.Dispatcher.RetryMin"}},
	}
	config := func(t *testing.T, args ...string) server.Config {
		t.Helper()
		var out, errb bytes.Buffer
		cli, _, err := parse(append([]string{"--data-dir", dir, "serve"}, args...), &out, &errb)
		if err != nil {
			t.Fatalf("parse %q: %v %s", args, err, errb.String())
		}
		cfg, err := cli.Serve.config(&Globals{DataDir: cli.DataDir})
		if err != nil {
			t.Fatalf("config %q: %v", args, err)
		}
		return cfg
	}
	for _, f := range serveFlags(t) {
		t.Run(f, func(t *testing.T) {
			c, ok := cases[f]
			if !ok {
				t.Fatalf("--%s has no case here: add one naming the server.Config field it sets", f)
			}
			if !slices.Contains(c.args, "--"+f) {
				t.Fatalf("the case of --%s does not set it", f)
			}
			got := changedFields(config(t, c.base...), config(t, append(slices.Clone(c.base), c.args...)...))
			want := slices.Sorted(slices.Values(c.fields))
			if !slices.Equal(got, want) {
				t.Errorf("--%s changed %v, want %v", f, got, want)
			}
		})
	}
}

// serveFlags lists the flags of the serve command in kong's model.
func serveFlags(t *testing.T) []string {
	t.Helper()
	var out, errb bytes.Buffer
	_, kctx, err := parse([]string{"serve"}, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	var serve *kong.Node
	for _, n := range kctx.Model.Children {
		if n.Name == "serve" {
			serve = n
		}
	}
	if serve == nil {
		t.Fatal("no serve command in the model")
	}
	var names []string
	for _, f := range serve.Flags {
		if f.Name != "help" {
			names = append(names, f.Name)
		}
	}
	if len(names) < 30 {
		t.Fatalf("only %d serve flags found in the model", len(names))
	}
	return names
}

// changedFields lists the paths of the leaf fields that differ between a
// and b (structs are walked; everything else is compared whole).
func changedFields(a, b server.Config) []string {
	var out []string
	var walk func(prefix string, x, y reflect.Value)
	walk = func(prefix string, x, y reflect.Value) {
		if x.Kind() == reflect.Struct && x.Type() != reflect.TypeFor[time.Time]() {
			for i := range x.NumField() {
				if !x.Type().Field(i).IsExported() {
					continue // derived from the exported ones (health's precomputed tables)
				}
				name := x.Type().Field(i).Name
				if prefix != "" {
					name = prefix + "." + name
				}
				walk(name, x.Field(i), y.Field(i))
			}
			return
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, prefix)
		}
	}
	walk("", reflect.ValueOf(a), reflect.ValueOf(b))
	slices.Sort(out)
	return out
}

// testCertPEM is a self-signed certificate for --mqtt-source-ca-file.
func testCertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// TestServeGCPercent: serve sets a GC target of its own unless GOGC is set,
// when the runtime's is the operator's.
func TestServeGCPercent(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}
	}
	if p, ok := defaultGCPercent(env("")); !ok || p != serveGCPercent {
		t.Errorf("without GOGC: %d, %v; want %d", p, ok, serveGCPercent)
	}
	for _, v := range []string{"100", "off", "200"} {
		if _, ok := defaultGCPercent(env(v)); ok {
			t.Errorf("GOGC=%s: serve sets its own", v)
		}
	}
}

package health

import (
	"testing"
)

// BenchmarkThresholdLookup measures one lookup of a terminal's thresholds
// by tenant and model, as the message path does once per message: with no
// overrides, a tenant without any among tenants with some, a tenant's
// own, and a model's.
func BenchmarkThresholdLookup(b *testing.B) {
	d := &Thresholds{Tenants: map[string]TenantThresholds{}}
	for _, tn := range []string{"acme", "globex", "initech", "umbrella"} {
		d.Tenants[tn] = TenantThresholds{Values: map[string]float64{"txn_failures.rate": 0.25},
			Models: map[string]map[string]float64{"A920": {"offline.after": 600}}}
	}
	empty := compileThresholds(DefaultConfig().withDefaults(), &Thresholds{}, 0)
	set := compileThresholds(DefaultConfig().withDefaults(), d, 1)
	for _, c := range []struct {
		name          string
		t             *thresholdSet
		tenant, model string
	}{
		{"none", empty, "acme", "A920"},
		{"other_tenant", set, "hooli", "A920"},
		{"tenant", set, "acme", "S90"},
		{"model", set, "acme", "A920"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var r *resolved
			for b.Loop() {
				r = c.t.lookup(c.tenant, c.model)
			}
			if r == nil {
				b.Fatal("no thresholds")
			}
		})
	}
}

// TestThresholdLookupAllocates nothing.
func TestThresholdLookupAllocates(t *testing.T) {
	d := &Thresholds{Tenants: map[string]TenantThresholds{"acme": {Values: map[string]float64{"txn_failures.rate": 0.25},
		Models: map[string]map[string]float64{"A920": {"offline.after": 600}}}}}
	set := compileThresholds(DefaultConfig().withDefaults(), d, 1)
	tenant, model := "acme", "A920"
	if n := testing.AllocsPerRun(100, func() { set.lookup(tenant, model) }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
	if r := set.lookup(tenant, model); r.OfflineAfter.Seconds() != 600 || r.TxnFailureRate != 0.25 {
		t.Errorf("model's thresholds: %v %v", r.OfflineAfter, r.TxnFailureRate)
	}
}

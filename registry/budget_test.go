package registry_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/posfleet/posfleet/registry"
)

var (
	attacker = netip.MustParseAddr("192.0.2.66")
	neighbor = netip.MustParseAddr("192.0.2.67")
	bot      = netip.MustParseAddr("2001:db8::1")
	botToo   = netip.MustParseAddr("2001:db8::2") // same /64
)

func authFrom(r *registry.Registry, username, secret string, src netip.Addr) error {
	_, err := r.AuthenticateFrom(context.Background(), username, []byte(secret), src)
	return err
}

// TestAuthenticateBudgets: failed verifications are bounded per source
// address and per username; an attempt over a budget is refused without a
// verification, while other sources and cached terminals go on.
func TestAuthenticateBudgets(t *testing.T) {
	// Refill so slow that nothing comes back during the test.
	const slowRefill = 0.0001
	open := func(t *testing.T, opts registry.Options) (*registry.Registry, map[string]string) {
		r := open(t, opts)
		res := importFile(t, r, "good.csv")
		m := map[string]string{}
		for ref, s := range secrets(res.Credentials) {
			m[ref.String()] = s
		}
		return r, m
	}

	t.Run("per source", func(t *testing.T) {
		r, sec := open(t, registry.Options{SourceFailuresPerSecond: slowRefill, SourceFailureBurst: 3, UsernameFailuresPerSecond: -1})
		// A terminal that connected before the flood.
		if err := authFrom(r, "acme:T-0002", sec["acme:T-0002"], attacker); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := authFrom(r, "acme:T-0001", "wrong-secret-guess-0000", attacker); !errors.Is(err, registry.ErrBadCredentials) {
				t.Fatalf("failure %d: %v, want ErrBadCredentials", i, err)
			}
		}
		before := registry.SlowVerifications(r)
		err := authFrom(r, "beta.retail:POS_17", "wrong-secret-guess-0000", attacker)
		if !errors.Is(err, registry.ErrThrottled) || errors.Is(err, registry.ErrBadCredentials) {
			t.Fatalf("over the budget: %v, want ErrThrottled", err)
		}
		var th interface{ Throttled() bool }
		if !errors.As(err, &th) || !th.Throttled() {
			t.Errorf("%v has no Throttled() true", err)
		}
		if err := authFrom(r, "acme:T-0001", sec["acme:T-0001"], attacker); !errors.Is(err, registry.ErrThrottled) {
			t.Errorf("right secret of a never-cached terminal from the throttled source: %v, want ErrThrottled", err)
		}
		if n := registry.SlowVerifications(r) - before; n != 0 {
			t.Errorf("%d verifications over the budget, want none", n)
		}
		if err := authFrom(r, "acme:T-0002", sec["acme:T-0002"], attacker); err != nil {
			t.Errorf("cached terminal from the throttled source: %v", err)
		}
		if err := authFrom(r, "acme:T-0001", sec["acme:T-0001"], neighbor); err != nil {
			t.Errorf("another source: %v", err)
		}
		if err := auth(r, ref("beta.retail", "POS_17"), sec["beta.retail:POS_17"]); err != nil {
			t.Errorf("no source given: %v", err)
		}
	})

	t.Run("IPv6 per /64", func(t *testing.T) {
		r, _ := open(t, registry.Options{SourceFailuresPerSecond: slowRefill, SourceFailureBurst: 1, UsernameFailuresPerSecond: -1})
		if err := authFrom(r, "acme:T-0001", "wrong-secret-guess-0000", bot); !errors.Is(err, registry.ErrBadCredentials) {
			t.Fatal(err)
		}
		if err := authFrom(r, "acme:T-0002", "wrong-secret-guess-0000", botToo); !errors.Is(err, registry.ErrThrottled) {
			t.Errorf("same /64: %v, want ErrThrottled", err)
		}
	})

	t.Run("concurrent flood spends at most the burst", func(t *testing.T) {
		r, _ := open(t, registry.Options{SourceFailuresPerSecond: slowRefill, SourceFailureBurst: 5, UsernameFailuresPerSecond: -1, HashTime: 4})
		var wg sync.WaitGroup
		var mu sync.Mutex
		outcomes := map[string]int{}
		for range 100 {
			wg.Go(func() {
				err := authFrom(r, "acme:T-0001", "wrong-secret-guess-0000", attacker)
				k := "other"
				switch {
				case errors.Is(err, registry.ErrThrottled):
					k = "throttled"
				case errors.Is(err, registry.ErrBadCredentials):
					k = "bad"
				}
				mu.Lock()
				outcomes[k]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if n := registry.SlowVerifications(r); n > 5 {
			t.Errorf("%d verifications, want at most the burst of 5", n)
		}
		if outcomes["bad"] < 1 || outcomes["bad"] > 5 || outcomes["throttled"] != 100-outcomes["bad"] {
			t.Errorf("outcomes %v, want 1..5 bad, the rest throttled", outcomes)
		}
	})

	t.Run("per username", func(t *testing.T) {
		r, sec := open(t, registry.Options{UsernameFailuresPerSecond: slowRefill, UsernameFailureBurst: 2})
		if err := authFrom(r, "acme:T-0002", sec["acme:T-0002"], neighbor); err != nil {
			t.Fatal(err)
		}
		srcs := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"}
		for i, s := range srcs {
			err := authFrom(r, "acme:T-0002", "wrong-secret-guess-0000", netip.MustParseAddr(s))
			want := registry.ErrBadCredentials
			if i == 2 {
				want = registry.ErrThrottled
			}
			if !errors.Is(err, want) {
				t.Errorf("guess %d from %s: %v, want %v", i, s, err, want)
			}
		}
		if err := authFrom(r, "acme:T-0002", sec["acme:T-0002"], neighbor); err != nil {
			t.Errorf("cached terminal whose username is over its budget: %v", err)
		}
		if err := authFrom(r, "acme:T-0001", sec["acme:T-0001"], netip.MustParseAddr(srcs[0])); err != nil {
			t.Errorf("another username: %v", err)
		}
	})

	t.Run("options validated", func(t *testing.T) {
		for _, o := range []registry.Options{{SourceFailureBurst: -1}, {UsernameFailureBurst: -3}, {MaxBudgetKeys: -1}} {
			if r, err := registry.Open(context.Background(), openDB(t, t.TempDir()+"/r.db"), o); err == nil {
				r.Close()
				t.Errorf("Open accepted %+v", o)
			}
		}
	})
}

package broker

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the broker's Prometheus metrics. They are always created (an
// increment is cheap) and registered only when a Registerer is given.
type metrics struct {
	connects     prometheus.Counter
	authFailures prometheus.Counter
	aclDenials   *prometheus.CounterVec // kind: publish, subscribe, will
	publishes    *prometheus.CounterVec // result: accepted, rejected, failed, denied
	// publishes' children, looked up once: the accepted one counts every message.
	accepted, rejected, failed, denied prometheus.Counter
	rateLimited                        prometheus.Counter
	authThrottled                      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, connected func() int) (*metrics, error) {
	m := &metrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_broker_connects_total",
			Help: "Terminal connections authenticated and established.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_broker_auth_failures_total",
			Help: "CONNECTs refused for bad username, password or client ID.",
		}),
		aclDenials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_broker_acl_denials_total",
			Help: "Publishes, subscribes and last wills refused by the topic ACL.",
		}, []string{"kind"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_broker_publishes_total",
			Help: "Terminal publishes and last wills handled, by result: accepted (stored by the sink), rejected (bad input), failed (sink could not store), denied (ACL).",
		}, []string{"result"}),
		authThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_broker_auth_throttled_total",
			Help: "CONNECTs refused without checking the secret: their source address or username was over its budget of failed attempts.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_broker_rate_limited_total",
			Help: "Publishes delayed because the terminal was over its rate.",
		}),
	}
	for _, k := range []string{"publish", "subscribe", "will"} {
		m.aclDenials.WithLabelValues(k)
	}
	m.accepted = m.publishes.WithLabelValues("accepted")
	m.rejected = m.publishes.WithLabelValues("rejected")
	m.failed = m.publishes.WithLabelValues("failed")
	m.denied = m.publishes.WithLabelValues("denied")
	if reg == nil {
		return m, nil
	}
	connections := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "posfleet_broker_connections",
		Help: "Terminals connected now.",
	}, func() float64 { return float64(connected()) })
	for _, c := range []prometheus.Collector{connections, m.connects, m.authFailures, m.aclDenials, m.publishes, m.rateLimited, m.authThrottled} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("broker: metrics already registered (one broker per registry): %w", err)
			}
			return nil, fmt.Errorf("broker: register metrics: %w", err)
		}
	}
	return m, nil
}

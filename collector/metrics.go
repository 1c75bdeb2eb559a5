package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
)

type metrics struct {
	reg             prometheus.Registerer
	collectors      []prometheus.Collector
	accepted        *prometheus.CounterVec
	acceptedBy      map[posfleet.Channel]prometheus.Counter // accepted's children, looked up once
	rejected        *prometheus.CounterVec
	security        *prometheus.CounterVec
	securityDropped *prometheus.CounterVec
	// rejectionsDropped counts rejections not stored, by reason.
	rejectionsDropped *prometheus.CounterVec
	duplicates        prometheus.Counter
	gaps              prometheus.Counter
	seqResets         prometheus.Counter
	commitSeconds     prometheus.Histogram
	spoolErrors       prometheus.Counter
	spoolDamaged      prometheus.Counter
	batches           prometheus.Counter
	points            prometheus.Counter
	writeErrors       *prometheus.CounterVec
	writeSeconds      prometheus.Histogram
	deadLetters       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, c *Collector) *metrics {
	m := &metrics{
		reg: reg,
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_messages_accepted_total", Help: "Messages accepted and spooled, by channel.",
		}, []string{"channel"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_messages_rejected_total", Help: "Messages refused as bad input, by reason.",
		}, []string{"reason"}),
		security: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_security_events_total", Help: "Refused connections and ACL denials, by kind.",
		}, []string{"kind"}),
		securityDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_security_events_dropped_total", Help: "Security events counted but not stored (spool_full, queue_full), or stored without their source (aggregator_full).",
		}, []string{"reason"}),
		rejectionsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_rejections_dropped_total", Help: "Rejected messages counted but not stored (spool_full, queue_full), or stored without their terminal (aggregator_full).",
		}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_messages_duplicate_total", Help: "Messages dropped because their seq was already seen.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_seq_gaps_total", Help: "Seq numbers skipped by terminals: messages never delivered.",
		}),
		seqResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_seq_resets_total", Help: "Times a terminal started counting its seq again from a lower value (wiped outbox, re-provisioning).",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "posfleet_spool_commit_seconds", Help: "Time to write (and fsync) one group of spool entries.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		spoolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_spool_errors_total", Help: "Spool read, write or fsync failures.",
		}),
		spoolDamaged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_spool_damaged_total", Help: "Damaged stretches of the spool (torn writes) found at start; intact entries were kept, the damage moved to spool/damaged-<time>/.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_write_batches_total", Help: "Batches the time-series store accepted.",
		}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_write_points_total", Help: "Points the time-series store accepted.",
		}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_write_errors_total", Help: "Failed batch writes: unavailable (retried) or rejected (split, bad lines dead-lettered).",
		}, []string{"kind"}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "posfleet_write_seconds", Help: "Latency of one batch write to the time-series store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posfleet_write_dead_letters_total", Help: "Lines the store refused, kept in the spool's dead-letter file.",
		}),
	}
	for _, r := range posfleet.Reasons {
		m.rejected.WithLabelValues(string(r))
	}
	m.acceptedBy = make(map[posfleet.Channel]prometheus.Counter, len(posfleet.UplinkChannels))
	for _, ch := range posfleet.UplinkChannels {
		m.acceptedBy[ch] = m.accepted.WithLabelValues(string(ch))
	}
	for _, r := range []string{dropSpoolFull, dropQueueFull, dropAggregatorFull} {
		m.securityDropped.WithLabelValues(r)
		m.rejectionsDropped.WithLabelValues(r)
	}
	m.writeErrors.WithLabelValues("unavailable")
	m.writeErrors.WithLabelValues("rejected")
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "posfleet_spool_depth", Help: "Spool entries not yet in the time-series store.",
	}, func() float64 { return float64(c.spool.last.Load() - c.acked.Load()) })
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "posfleet_spool_bytes", Help: "Bytes of spool entries not yet in the time-series store.",
	}, func() float64 { return float64(c.spoolBytes.Load()) })
	m.collectors = []prometheus.Collector{m.accepted, m.rejected, m.security, m.securityDropped, m.rejectionsDropped, m.duplicates, m.gaps, m.seqResets,
		m.commitSeconds, m.spoolErrors, m.spoolDamaged, m.batches, m.points, m.writeErrors, m.writeSeconds, m.deadLetters, depth, bytes}
	if reg != nil {
		for _, col := range m.collectors {
			reg.MustRegister(col)
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, col := range m.collectors {
		m.reg.Unregister(col)
	}
}

package logs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a record is dropped, the reason label of linkops_log_records_dropped_total.
const (
	reasonQueueFull     = "queue_full"
	reasonRetentionAge  = "retention_age"
	reasonRetentionSize = "retention_size"
	// reasonWriteError counts records lost because their batch could not be committed
	// (disk full, I/O error): they were accepted by Append, so they must show up somewhere.
	reasonWriteError = "write_error"
)

// metrics are resolved to their label values once, so that Append and the writer pay for
// an atomic add, not a label lookup.
type metrics struct {
	written   [numKinds]prometheus.Counter
	queueFull [numKinds]prometheus.Counter
	age       [numKinds]prometheus.Counter
	trimmed   [numKinds]prometheus.Counter
	writeErr  [numKinds]prometheus.Counter
	bytes     prometheus.Gauge
	query     [numKinds]prometheus.Observer
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	written := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "linkops_log_records_written_total",
		Help: "Log records committed to this node's log store, by kind.",
	}, []string{"kind"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "linkops_log_records_dropped_total",
		Help: "Log records not stored (queue_full, write_error) or deleted by retention (retention_age, retention_size), by kind.",
	}, []string{"kind", "reason"})
	bytes := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "linkops_log_store_bytes",
		Help: "Bytes of log record data stored on this node; retention bounds it, and the file adds index and page overhead.",
	})
	query := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "linkops_log_query_seconds",
		Help:    "Latency of log queries against this node's store, by kind.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"kind"})
	if reg != nil {
		var err error
		if written, err = register(reg, written); err != nil {
			return nil, err
		}
		if dropped, err = register(reg, dropped); err != nil {
			return nil, err
		}
		if bytes, err = register(reg, bytes); err != nil {
			return nil, err
		}
		if query, err = register(reg, query); err != nil {
			return nil, err
		}
	}
	m := &metrics{bytes: bytes}
	for i, k := range kinds {
		m.written[i] = written.WithLabelValues(k.name)
		m.queueFull[i] = dropped.WithLabelValues(k.name, reasonQueueFull)
		m.age[i] = dropped.WithLabelValues(k.name, reasonRetentionAge)
		m.trimmed[i] = dropped.WithLabelValues(k.name, reasonRetentionSize)
		m.writeErr[i] = dropped.WithLabelValues(k.name, reasonWriteError)
		m.query[i] = query.WithLabelValues(k.name)
	}
	return m, nil
}

// register adds c to reg, or returns the collector already registered under the same
// name, so that a store reopened on the same registry (a restart in a test) keeps counting.
func register[C prometheus.Collector](reg *prometheus.Registry, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register log store metrics: %w", err)
}

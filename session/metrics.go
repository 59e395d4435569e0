package session

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the session metrics of SPEC §4.4.1 (per gateway, on this node) and the
// presence writer's.
type Metrics struct {
	sessions      *prometheus.GaugeVec
	messages      *prometheus.CounterVec
	presenceQueue prometheus.Gauge
	presenceBatch prometheus.Histogram
	presenceFails prometheus.Counter

	// counters caches the message counters by label: a device message is counted on the
	// hot path, where a label lookup costs more than the decode.
	counters sync.Map // [3]string → prometheus.Counter
}

// NewMetrics registers the metrics with reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "linkops_gateway_sessions",
			Help: "Device sessions held on this node, by gateway."}, []string{"gateway"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_device_messages_total",
			Help: "Device messages decoded (up) and sent (down) on this node, by gateway and message type."}, []string{"gateway", "direction", "type"}),
		presenceQueue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "linkops_presence_queue",
			Help: "Presence changes of this node waiting to be written through raft."}),
		presenceBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "linkops_presence_batch_size",
			Help: "Presence changes per raft entry.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		presenceFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "linkops_presence_write_failures_total",
			Help: "Presence batches that could not be written (no leader, say) and were queued again."}),
	}
	reg.MustRegister(m.sessions, m.messages, m.presenceQueue, m.presenceBatch, m.presenceFails)
	return m
}

func (m *Metrics) opened(gateway string) { m.sessions.WithLabelValues(gateway).Inc() }
func (m *Metrics) closed(gateway string) { m.sessions.WithLabelValues(gateway).Dec() }

func (m *Metrics) message(gateway, direction, typ string) { m.counter(gateway, direction, typ).Inc() }

// counter is the message counter of one label set.
func (m *Metrics) counter(gateway, direction, typ string) prometheus.Counter {
	key := [3]string{gateway, direction, typ}
	c, ok := m.counters.Load(key)
	if !ok {
		c, _ = m.counters.LoadOrStore(key, m.messages.WithLabelValues(gateway, direction, typ))
	}
	return c.(prometheus.Counter)
}

// typedCounter is a session's cached counter of one message type.
type typedCounter struct {
	typ string
	c   prometheus.Counter
}

func (m *Metrics) presenceWrite(_ time.Time, n int, err error) {
	m.presenceBatch.Observe(float64(n))
	if err != nil {
		m.presenceFails.Inc()
	}
}

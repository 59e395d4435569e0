package modbus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a poll (the outcome label of linkops_modbus_polls_total).
const (
	OutcomeOK       = "ok"
	OutcomeError    = "error"
	OutcomeNoDevice = "no_device"
)

// Metrics are the pollers' metrics on this node.
type Metrics struct {
	polls   *prometheus.CounterVec
	seconds prometheus.Histogram
}

// NewMetrics registers the metrics with reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_modbus_polls_total",
			Help: "Modbus TCP polls of this node, by gateway and outcome (ok, error, no_device)."}, []string{"gateway", "outcome"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "linkops_modbus_poll_seconds",
			Help:    "Time one poll of every point of a Modbus TCP gateway took.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}}),
	}
	reg.MustRegister(m.polls, m.seconds)
	return m
}

func (m *Metrics) poll(gateway, outcome string, start time.Time) {
	m.polls.WithLabelValues(gateway, outcome).Inc()
	if outcome != OutcomeNoDevice {
		m.seconds.Observe(time.Since(start).Seconds())
	}
}

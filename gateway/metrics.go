package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
)

// Metrics are the codec and admission metrics of SPEC §4.4.1, per gateway on this node.
type Metrics struct {
	codecErrorsVec *prometheus.CounterVec
	codecSeconds   *prometheus.HistogramVec
	refusals       *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		codecErrorsVec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_codec_errors_total",
			Help: "Codec calls that cost a message, by gateway and reason (timeout, exception, garbage, input, reported)."}, []string{"gateway", "reason"}),
		codecSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "linkops_codec_seconds",
			Help:    "Time spent in uploaded codecs per call, by gateway and operation.",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25}}, []string{"gateway", "op"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_gateway_refusals_total",
			Help: "Connections and messages a gateway refused, by reason (unauthorized, bad_credentials, dropped)."}, []string{"gateway", "reason"}),
	}
	reg.MustRegister(m.codecErrorsVec, m.codecSeconds, m.refusals)
	return m
}

// codecCall times a codec call and counts its failure by kind.
func (m *Metrics) codecCall(gateway, op string, start time.Time, err error) {
	m.codecSeconds.WithLabelValues(gateway, op).Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	reason := "exception"
	switch {
	case errors.Is(err, protocol.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		reason = "timeout"
	case errors.Is(err, protocol.ErrGarbage):
		reason = "garbage"
	case errors.Is(err, protocol.ErrInput):
		reason = "input"
	}
	m.codecErrorsVec.WithLabelValues(gateway, reason).Inc()
}

func (m *Metrics) codecErrors(gateway, reason string, n int) {
	m.codecErrorsVec.WithLabelValues(gateway, reason).Add(float64(n))
}

func (m *Metrics) refusal(gateway string, err error) {
	reason := "dropped"
	switch {
	case errors.Is(err, listeners.ErrBadCredentials):
		reason = "bad_credentials"
	case errors.Is(err, listeners.ErrNotAuthorized):
		reason = "unauthorized"
	}
	m.refusals.WithLabelValues(gateway, reason).Inc()
}

package sip

import "github.com/prometheus/client_golang/prometheus"

// Registration outcomes (linkops_sip_registrations_total{outcome}).
const (
	OutcomeRegistered   = "registered"
	OutcomeChallenged   = "challenged"
	OutcomeRefused      = "refused"
	OutcomeUnknown      = "unknown_device"
	OutcomeUnregistered = "unregistered"
)

// Metrics are the SIP counters of this node, per gateway.
type Metrics struct {
	registrations *prometheus.CounterVec
	keepalives    *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_sip_registrations_total",
			Help: "GB/T 28181 REGISTER requests answered, by gateway and outcome (registered, challenged, refused, unknown_device, unregistered)."},
			[]string{"gateway", "outcome"}),
		keepalives: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_sip_keepalives_total",
			Help: "GB/T 28181 keepalives accepted, by gateway."}, []string{"gateway"}),
	}
	reg.MustRegister(m.registrations, m.keepalives)
	return m
}

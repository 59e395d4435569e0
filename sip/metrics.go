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

// INVITE outcomes (linkops_sip_invites_total{outcome}).
const (
	InviteAnswered = "answered"
	InviteTimeout  = "timeout"
	InviteRefused  = "refused"
	InviteFailed   = "failed"
)

// Metrics are the SIP counters of this node, per gateway.
type Metrics struct {
	registrations *prometheus.CounterVec
	keepalives    *prometheus.CounterVec
	invites       *prometheus.CounterVec
	calls         *prometheus.GaugeVec
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
		invites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_sip_invites_total",
			Help: "GB/T 28181 INVITEs (video plays) sent, by gateway and outcome (answered, timeout, refused, failed)."},
			[]string{"gateway", "outcome"}),
		calls: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "linkops_sip_calls",
			Help: "GB/T 28181 media sessions (INVITE dialogs) established from this node, by gateway."}, []string{"gateway"}),
	}
	reg.MustRegister(m.registrations, m.keepalives, m.invites, m.calls)
	return m
}

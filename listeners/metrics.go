package listeners

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the listener metrics of SPEC §4.3.1, labelled by component (each node
// exports its own; Prometheus adds the instance).
type Metrics struct {
	up          *prometheus.GaugeVec
	connections *prometheus.GaugeVec
	messages    *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	errors      *prometheus.CounterVec
}

// NewMetrics registers the listener metrics with reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "linkops_listener_up",
			Help: "1 while the component's listener is bound and serving on this node."}, []string{"component"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "linkops_listener_connections",
			Help: "Connections open on the component's listener on this node."}, []string{"component"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_listener_messages_total",
			Help: "Messages received (in) and sent (out) by the component's listener, after framing."}, []string{"component", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_listener_bytes_total",
			Help: "Message payload bytes received (in) and sent (out) by the component's listener."}, []string{"component", "direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_listener_errors_total",
			Help: "Problems that cost a connection or a message, by reason (serve: the listener failed or could not bind; accept, tls_handshake, oversize, garbage, timeout, no_gateway, …)."}, []string{"component", "reason"}),
	}
	reg.MustRegister(m.up, m.connections, m.messages, m.bytes, m.errors)
	return m
}

// Forget removes a component's series once it no longer runs on this node.
func (m *Metrics) Forget(componentID string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"component": componentID}
	m.up.DeletePartialMatch(l)
	m.connections.DeletePartialMatch(l)
	m.messages.DeletePartialMatch(l)
	m.bytes.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
}

// componentMetrics are one component's series; a nil value records nothing.
type componentMetrics struct {
	m                          *Metrics
	id                         string
	in, out, inBytes, outBytes prometheus.Counter
	conns                      prometheus.Gauge
}

func (m *Metrics) component(id string) *componentMetrics {
	if m == nil {
		return nil
	}
	return &componentMetrics{m: m, id: id,
		in: m.messages.WithLabelValues(id, "in"), out: m.messages.WithLabelValues(id, "out"),
		inBytes: m.bytes.WithLabelValues(id, "in"), outBytes: m.bytes.WithLabelValues(id, "out"),
		conns: m.connections.WithLabelValues(id)}
}

func (c *componentMetrics) up(v bool) {
	if c == nil {
		return
	}
	if v {
		c.m.up.WithLabelValues(c.id).Set(1)
	} else {
		c.m.up.WithLabelValues(c.id).Set(0)
	}
}

func (c *componentMetrics) connections(d int) {
	if c != nil {
		c.conns.Add(float64(d))
	}
}

func (c *componentMetrics) messages(dir string, n int) {
	if c == nil {
		return
	}
	if dir == "in" {
		c.in.Inc()
		c.inBytes.Add(float64(n))
	} else {
		c.out.Inc()
		c.outBytes.Add(float64(n))
	}
}

func (c *componentMetrics) error(reason string) {
	if c != nil {
		c.m.errors.WithLabelValues(c.id, reason).Inc()
	}
}

package cluster

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg           prometheus.Registerer
	collectors    []prometheus.Collector
	applySeconds  *prometheus.HistogramVec
	leaderChanges prometheus.Counter
	refusedConns  prometheus.Counter
}

func newMetrics(c *Cluster, reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linkops_raft_apply_seconds",
			Help:    "Time from proposing a command to its being applied on the leader, by outcome.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkops_raft_leadership_changes_total",
			Help: "Times this node gained or lost leadership.",
		}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkops_raft_refused_connections_total",
			Help: "Raft connections refused because the peer failed the cluster-key challenge.",
		}),
	}
	m.collectors = []prometheus.Collector{
		m.applySeconds, m.leaderChanges, m.refusedConns,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "linkops_cluster_members", Help: "Members gossip currently considers alive.",
		}, func() float64 {
			n := 0
			for _, mb := range c.members.Members() {
				if mb.Status == StatusAlive {
					n++
				}
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "linkops_raft_is_leader", Help: "1 if this node is the raft leader.",
		}, func() float64 {
			if c.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "linkops_raft_applied_index", Help: "Index of the last raft entry applied on this node.",
		}, func() float64 { return float64(c.raft.AppliedIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "linkops_raft_last_contact_seconds", Help: "Seconds since this follower last heard from the leader (0 on the leader).",
		}, func() float64 {
			if lc := c.raft.LastContact(); !lc.IsZero() && c.raft.State() != raft.Leader {
				return time.Since(lc).Seconds()
			}
			return 0
		}),
	}
	if reg != nil {
		for _, col := range m.collectors {
			reg.MustRegister(col)
		}
	}
	return m
}

func (m *metrics) observeApply(start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.applySeconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}

func (m *metrics) unregister() {
	if m == nil || m.reg == nil {
		return
	}
	for _, col := range m.collectors {
		m.reg.Unregister(col)
	}
}

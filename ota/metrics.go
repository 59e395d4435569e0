package ota

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// Metrics are the OTA metrics of SPEC §4.8, plus what an operator needs when a campaign
// stalls (peer fetches, device-side batches).
type Metrics struct {
	pushes       prometheus.Counter
	pushFailures *prometheus.CounterVec
	timeouts     *prometheus.CounterVec
	bytesServed  prometheus.Counter
	peerFetches  *prometheus.CounterVec
	reports      *prometheus.CounterVec
	batchFails   prometheus.Counter
}

// NewMetrics registers the OTA metrics on reg (nil: unregistered). store feeds
// linkops_ota_devices{state} from the tasks' counts at each scrape.
func NewMetrics(reg prometheus.Registerer, store *fsm.Store) *Metrics {
	m := &Metrics{
		pushes: prometheus.NewCounter(prometheus.CounterOpts{Name: "linkops_ota_pushes_total",
			Help: "firmware/upgrade pushes this node's task engine sent (as leader)"}),
		pushFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_ota_push_failures_total",
			Help: "pushes that did not reach the device, by outcome (offline: put back to waiting)"}, []string{"outcome"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_ota_timeouts_total",
			Help: "devices failed by a timeout, by kind (response, upgrade)"}, []string{"kind"}),
		bytesServed: prometheus.NewCounter(prometheus.CounterOpts{Name: "linkops_firmware_bytes_served_total",
			Help: "firmware bytes this node sent to devices and users"}),
		peerFetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_firmware_peer_fetches_total",
			Help: "firmware files copied from a peer into this node's file store, by result"}, []string{"result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_ota_device_reports_total",
			Help: "firmware messages devices sent to this node, by type"}, []string{"type"}),
		batchFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "linkops_ota_report_batch_failures_total",
			Help: "batches of device progress that could not be written through raft yet (retried)"}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.pushes, m.pushFailures, m.timeouts, m.bytesServed, m.peerFetches, m.reports, m.batchFails)
	if store != nil {
		for _, state := range resource.RecordStates {
			state := state
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "linkops_ota_devices",
				Help: "devices in upgrade tasks, by record state", ConstLabels: prometheus.Labels{"state": state}},
				func() float64 {
					c := store.OTACounts()
					switch state {
					case resource.RecordWaiting:
						return float64(c.Waiting)
					case resource.RecordProcessing:
						return float64(c.Processing)
					case resource.RecordSuccess:
						return float64(c.Success)
					case resource.RecordFailed:
						return float64(c.Failed)
					}
					return float64(c.Canceled)
				}))
		}
	}
	return m
}

// defaults fills what a constructor's configuration left empty: the default logger, the
// system clock and unregistered metrics.
func defaults(log **slog.Logger, now *func() time.Time, m **Metrics) {
	if *log == nil {
		*log = slog.Default()
	}
	if *now == nil {
		*now = time.Now
	}
	if *m == nil {
		*m = NewMetrics(nil, nil)
	}
}

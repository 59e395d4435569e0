package ota

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestDevicesGauge(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	w := timeoutWorld(t, now) // T: d5 waiting, d1–d4 processing
	reg := prometheus.NewRegistry()
	NewMetrics(reg, w.store())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "linkops_ota_devices" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"waiting": 1, "processing": 4, "success": 0, "failed": 0, "canceled": 0}
	for state, v := range want {
		if got[state] != v {
			t.Errorf("linkops_ota_devices{state=%q} = %v, want %v", state, got[state], v)
		}
	}
}

package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/megacontext/megacontext/memory"
)

// watchStore exports how this replica met the other replicas' writes to
// a shared store (all zero with the embedded store, but for loads).
func (m *metrics) watchStore(e *memory.Engine) {
	counter := func(name, help string, f func(memory.StoreCounters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(e.StoreCounters())) })
	}
	m.reg.MustRegister(
		counter("megacontext_store_conflicts_total", "Operations run again because another replica wrote to their context first.",
			func(c memory.StoreCounters) uint64 { return c.Conflicts }),
		counter("megacontext_store_catchups_total", "Cached contexts brought up to date with other replicas' writes.",
			func(c memory.StoreCounters) uint64 { return c.CatchUps }),
		counter("megacontext_store_loads_total", "Contexts read whole from the store.",
			func(c memory.StoreCounters) uint64 { return c.Loads }),
	)
}

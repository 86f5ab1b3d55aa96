package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/megacontext/megacontext/memory"
)

// watchStore exports how this replica met the other replicas' writes to
// a shared store (all zero with the embedded store, but for loads and
// writes), and the time its checks and writes took.
func (m *metrics) watchStore(e *memory.Engine) {
	counter := func(name, help string, f func(memory.StoreCounters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(e.StoreCounters())) })
	}
	seconds := func(name, help string, f func(memory.StoreCounters) time.Duration) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(e.StoreCounters()).Seconds() })
	}
	m.reg.MustRegister(
		counter("megacontext_store_conflicts_total", "Operations run again because another replica wrote to their context first.",
			func(c memory.StoreCounters) uint64 { return c.Conflicts }),
		counter("megacontext_store_catchups_total", "Cached contexts brought up to date with other replicas' writes.",
			func(c memory.StoreCounters) uint64 { return c.CatchUps }),
		counter("megacontext_store_loads_total", "Contexts read whole from the store.",
			func(c memory.StoreCounters) uint64 { return c.Loads }),
		counter("megacontext_store_checks_total", "Checks of a cached context against the shared store (one round trip before a request uses it).",
			func(c memory.StoreCounters) uint64 { return c.Checks }),
		seconds("megacontext_store_check_seconds_total", "Time the checks of cached contexts took, catch-ups included.",
			func(c memory.StoreCounters) time.Duration { return c.CheckTime }),
		counter("megacontext_store_writes_total", "Writes of a loaded context to the store (a turn makes two).",
			func(c memory.StoreCounters) uint64 { return c.Writes }),
		seconds("megacontext_store_write_seconds_total", "Time the writes of loaded contexts took.",
			func(c memory.StoreCounters) time.Duration { return c.WriteTime }),
		seconds("megacontext_store_write_wait_seconds_total", "Time requests waited for writes (a turn's message is written while its window is assembled).",
			func(c memory.StoreCounters) time.Duration { return c.WriteWait }),
	)
}

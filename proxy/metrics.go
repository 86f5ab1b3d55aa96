package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/megacontext/megacontext/memory"
)

// metrics are the proxy's Prometheus series.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	overhead       prometheus.Histogram
	windowTokens   prometheus.Histogram
	historyTokens  prometheus.Histogram
	upstreamErrors *prometheus.CounterVec
	retries        prometheus.Counter
	expansions     prometheus.Counter
	ingested       prometheus.Counter
	policy         *prometheus.CounterVec
	panics         prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "megacontext_requests_total", Help: "Requests by route and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "megacontext_request_seconds", Help: "Whole request latency, upstream included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
	}, []string{"route"})
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "megacontext_overhead_seconds", Help: "Time the proxy adds before forwarding (reconcile, ingest, window assembly).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	})
	m.windowTokens = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "megacontext_window_tokens", Help: "Tokens of the forwarded working window.",
		Buckets: prometheus.ExponentialBuckets(64, 2, 12),
	})
	m.historyTokens = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "megacontext_history_tokens", Help: "Tokens of the MegaContext behind each request.",
		Buckets: prometheus.ExponentialBuckets(256, 4, 10),
	})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "megacontext_upstream_errors_total", Help: "Upstream failures by kind.",
	}, []string{"kind"})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "megacontext_context_retries_total", Help: "Requests retried with a smaller window after an upstream context-length error.",
	})
	m.expansions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "megacontext_expansions_total", Help: "Focus expansions performed.",
	})
	m.ingested = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "megacontext_messages_ingested_total", Help: "Messages stored in memory.",
	})
	m.policy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "megacontext_policy_actions_total", Help: "Sensitive spans redacted or excluded, by rule and action.",
	}, []string{"rule", "action"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "megacontext_panics_total", Help: "Requests that hit a bug (a recovered panic); each is logged with its stack.",
	})
	m.reg.MustRegister(m.panics, m.policy, m.requests, m.latency, m.overhead, m.windowTokens, m.historyTokens,
		m.upstreamErrors, m.retries, m.expansions, m.ingested,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchEngine adds the engine's memory gauges, read at each scrape: what
// the loaded contexts are charged against memory.cache_bytes, how many are
// loaded, and the store file (which buntdb holds in memory whole).
func (m *metrics) watchEngine(e *memory.Engine) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "megacontext_cache_bytes", Help: "Estimated memory of the MegaContexts held loaded (bounded by memory.cache_bytes).",
		}, func() float64 { return float64(e.CachedBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "megacontext_cache_contexts", Help: "MegaContexts held loaded.",
		}, func() float64 { return float64(e.LoadedContexts()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "megacontext_store_bytes", Help: "Size of the store file (the embedded store keeps all of it in memory).",
		}, func() float64 { return float64(e.StoreBytes()) }),
	)
}

// registerFocus exports the engine's focus telemetry aggregates, read when
// scraped.
func (m *metrics) registerFocus(eng *memory.Engine) {
	total := func(f func(memory.FocusTotals) int64) func() float64 {
		return func() float64 { return float64(f(eng.FocusTotals())) }
	}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "megacontext_focus_windows_total", Help: "Windows kept and counted in the focus telemetry."},
			total(func(t memory.FocusTotals) int64 { return t.Windows })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "megacontext_focus_windows_dropped_total", Help: "Windows the focus telemetry dropped because its queue was full."},
			total(func(t memory.FocusTotals) int64 { return t.Dropped })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "megacontext_focus_node_expansions_total", Help: "Gist tree nodes opened by windows (shown in finer detail than the node)."},
			total(func(t memory.FocusTotals) int64 { return t.Expansions })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "megacontext_focus_node_swaps_total", Help: "Nodes that entered or left a context's window between consecutive windows."},
			total(func(t memory.FocusTotals) int64 { return t.Swaps })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "megacontext_focus_swap_rate", Help: "The last window's swap rate: the share of the nodes in it or in its context's previous window that are not in both."},
			func() float64 { return eng.FocusTotals().LastSwapRate }),
	)
}

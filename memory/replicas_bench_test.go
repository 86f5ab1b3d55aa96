package memory

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkTurnStoreCheck: chat turns on PostgreSQL through one replica,
// alternating turn by turn (so that both see the same load on a shared
// host) between a cache checked before the user's message is written (as
// a contended context's turns do: three round trips) and the write's guard
// as the check (two). It reports each kind's p50 and mean wall time per
// turn (the engine's work, the store calls and the waits for a core) and
// their difference:
//
//	MEGACONTEXT_TEST_STORE=postgres go test ./memory -run '^$' -bench TurnStoreCheck -benchtime 400x
func BenchmarkTurnStoreCheck(b *testing.B) {
	if !onPostgres {
		b.Skip("turns on a shared store (MEGACONTEXT_TEST_STORE=postgres)")
	}
	e := mustOpen(b, Options{Now: fixedClock()})
	k := Key{Tenant: "t", Context: "bench"}
	if _, err := e.Import(k, conversation(400, 7), e.opts.Now()); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	conv := []Message{msg("system", "You are helpful.")}
	times := map[bool][]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		checked := i%2 == 0
		e.setContended(k, checked)
		start := time.Now()
		conv = append(conv, msg("user", filler(r, 50)))
		w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40})
		if err != nil {
			b.Fatal(err)
		}
		e.KeepWindow(w, WindowMeta{Budget: 4096, Tokens: w.Tokens, Status: 200}) // as the proxy does
		reply := msg("assistant", filler(r, 40))
		if _, err := e.StoreResponse(k, w.LastSeq, w.NextSeq, &reply, false, nil); err != nil {
			b.Fatal(err)
		}
		times[checked] = append(times[checked], time.Since(start))
		conv = append(conv, reply)
	}
	b.StopTimer()
	stats := func(ds []time.Duration) (p50, mean float64) {
		slices.Sort(ds)
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return float64(ds[len(ds)/2].Microseconds()) / 1000, float64(sum.Microseconds()) / 1000 / float64(len(ds))
	}
	if len(times[true]) == 0 || len(times[false]) == 0 {
		return
	}
	cp, cm := stats(times[true])
	gp, gm := stats(times[false])
	b.ReportMetric(cp, "checked-p50-ms")
	b.ReportMetric(gp, "guarded-p50-ms")
	b.ReportMetric(cm, "checked-mean-ms")
	b.ReportMetric(gm, "guarded-mean-ms")
	b.ReportMetric(cp-gp, "saved-p50-ms")
}

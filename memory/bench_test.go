package memory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// buildHistory imports about n tokens of conversation into a fresh engine
// (in memory) and returns it with the key.
func buildHistory(b *testing.B, n int, render string) (*Engine, Key) {
	b.Helper()
	return buildHistoryWith(b, n, Options{Now: fixedClock(), Render: render})
}

// buildHistoryWith is buildHistory into an engine opened with opts.
func buildHistoryWith(b *testing.B, n int, opts Options) (*Engine, Key) {
	b.Helper()
	e, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	k := Key{Tenant: "bench", Context: "c"}
	r := rand.New(rand.NewPCG(uint64(n), 1))
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tokens := 0
	for s := 0; tokens < n; s++ {
		var msgs []Message
		for t := 0; t < 10; t++ {
			u := filler(r, 60)
			if r.IntN(50) == 0 {
				u += fmt.Sprintf(" The code for project %d is QX-%04d.", s, r.IntN(10000))
			}
			msgs = append(msgs, msg("user", u), msg("assistant", filler(r, 90)))
		}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, at.Add(time.Duration(s)*time.Hour)); err != nil {
			b.Fatal(err)
		}
		st, _ := e.Stats(k)
		tokens = st.Tokens
	}
	return e, k
}

var benchSizes = []int{10_000, 100_000, 1_000_000}

// BenchmarkAssemble measures one window assembly (lens, allocator, render)
// for a question at a 4096-token budget, over histories of 10K, 100K and 1M
// tokens, in both layouts. The question's filler words occur in nearly
// every block: the worst case for the lens and the allocator.
func BenchmarkAssemble(b *testing.B) {
	for _, render := range []string{RenderOutline, RenderChronological} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("render=%s/history=%dk", render, n/1000), func(b *testing.B) {
				e, k := buildHistory(b, n, render)
				defer e.Close()
				req := Request{Key: k, Messages: []Message{msg("system", "You are helpful."), msg("user", "What was the code for project 7 again? Something with garden and river.")}, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40, DryRun: true}
				b.ResetTimer()
				for b.Loop() {
					if _, err := e.Prepare(req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkIngest measures storing one new turn (user message of ~60 words)
// and assembling its window, on top of histories of 10K, 100K and 1M tokens:
// the proxy's whole per-request cost.
func BenchmarkIngest(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("history=%dk", n/1000), func(b *testing.B) {
			e, k := buildHistory(b, n, RenderOutline)
			defer e.Close()
			r := rand.New(rand.NewPCG(9, 9))
			conv := []Message{msg("system", "You are helpful.")}
			b.ResetTimer()
			for b.Loop() {
				conv = append(conv, msg("user", filler(r, 60)))
				w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40})
				if err != nil {
					b.Fatal(err)
				}
				reply := msg("assistant", filler(r, 40))
				if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
					b.Fatal(err)
				}
				conv = append(conv, reply)
				if len(conv) > 40 {
					conv = []Message{msg("system", "You are helpful.")} // a new chat keeps resends short
				}
			}
		})
	}
}

// BenchmarkResend measures what a chat UI costs the engine: the whole
// conversation, of 10K or 1M tokens (about 12,000 messages), resent every
// turn with the reply to the last turn (stored by the proxy in its own
// JSON, resent in the client's) and a new user message, undecoded (raw
// JSON, as the proxy hands it over). Run with -benchtime 50x; compare the
// two sizes (same run) rather than absolute times.
func BenchmarkResend(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("history=%dk", n/1000), func(b *testing.B) {
			e, err := testOpen(b, Options{Now: fixedClock()})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			k := Key{Tenant: "bench", Context: "resend"}
			r := rand.New(rand.NewPCG(5, 5))
			conv := []Message{msg("system", "You are helpful.")}
			for tokens := 0; tokens < n; {
				conv = append(conv, msg("user", filler(r, 20)), msg("assistant", filler(r, 60)))
				tokens += 110 // about what the estimate charges the two
			}
			dec := &countingDecoder{}
			wires := undecoded(conv, plain)
			turn := func() {
				wires = append(wires, Message{Raw: encodeWire(msg("user", filler(r, 20)), 0)})
				w, err := e.Prepare(Request{Key: k, Messages: slices.Clone(wires), Decode: dec.decode, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40})
				if err != nil {
					b.Fatal(err)
				}
				reply := msg("assistant", filler(r, 30))
				if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, Message{Role: "assistant", Text: reply.Text, Raw: []byte(`{"proxy":1}`)}, false); err != nil {
					b.Fatal(err)
				}
				wires = append(wires, Message{Raw: encodeWire(reply, 0)})
			}
			turn()
			b.ResetTimer()
			for b.Loop() {
				turn()
			}
			b.ReportMetric(float64(len(wires)), "messages")
		})
	}
}

// BenchmarkKeepWindow measures the keeper's work for one window (explain,
// telemetry, keeping): what runs in the background after each request.
func BenchmarkKeepWindow(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("history=%dk", n/1000), func(b *testing.B) {
			e, k := buildHistory(b, n, RenderOutline)
			defer e.Close()
			req := Request{Key: k, Messages: []Message{msg("system", "You are helpful."), msg("user", "What was the code for project 7 again? Something with garden and river.")}, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40}
			w, err := e.Prepare(req)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				w.why.explained = false
				w.OmittedMatches = nil
				e.keepOne(keepJob{w: w, at: time.Now()})
			}
		})
	}
}

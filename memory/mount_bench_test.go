package memory

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fillHistory imports about n tokens of conversation into k, as
// buildHistory does, with codes that questions can ask for.
func fillHistory(b testing.TB, e *Engine, k Key, n int, seed uint64) {
	r := rand.New(rand.NewPCG(uint64(n), seed))
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for s := 0; ; s++ {
		st, err := e.Stats(k)
		if err == nil && st.Tokens >= n {
			return
		}
		var msgs []Message
		for t := 0; t < 10; t++ {
			u := filler(r, 60)
			if r.IntN(50) == 0 {
				u += fmt.Sprintf(" The code for %s project %d is QX-%04d.", k.Context, s, r.IntN(10000))
			}
			msgs = append(msgs, msg("user", u), msg("assistant", filler(r, 90)))
		}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, at.Add(time.Duration(s)*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAssembleMounts measures assembling a window (4,096-token
// budget) of a 100K-token memory with three mounted 512K-token memories,
// against the same window without mounts in the same run, over questions
// that name a project of the own memory or of one of the mounts. It
// reports the p50 and p99 of one assembly's time, and of the CPU time its
// thread spent (steady on a shared machine).
func BenchmarkAssembleMounts(b *testing.B) {
	e, err := Open(Options{Now: fixedClock()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	own := Key{Tenant: "bench", Context: "me"}
	fillHistory(b, e, own, 100_000, 1)
	mounts := []string{"handbook", "faq", "runbooks"}
	for i, m := range mounts {
		fillHistory(b, e, Key{Tenant: "bench", Context: m}, 512_000, uint64(i+2))
	}
	for _, withMounts := range []bool{false, true} {
		b.Run(fmt.Sprintf("mounts=%v", withMounts), func(b *testing.B) {
			// The thread's own CPU time per assembly, unlike the time, does
			// not count waiting for a core on a shared machine.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var lat, cpu []time.Duration
			i := 0
			for b.Loop() {
				i++
				q := fmt.Sprintf("What was the code for %s project %d again? Something with garden and river.", append([]string{"me"}, mounts...)[i%4], i%40)
				r := Request{Key: own, Messages: []Message{msg("system", "You are helpful."), msg("user", q)}, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40, DryRun: true}
				if withMounts {
					r.Mounts = mounts
				}
				start, c0 := time.Now(), threadCPU()
				if _, err := e.Prepare(r); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				cpu = append(cpu, threadCPU()-c0)
			}
			slices.Sort(lat)
			slices.Sort(cpu)
			b.ReportMetric(float64(cpu[len(cpu)/2].Microseconds())/1000, "p50-cpu-ms")
			b.ReportMetric(float64(cpu[len(cpu)*99/100].Microseconds())/1000, "p99-cpu-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// threadCPU is the calling thread's CPU time so far.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

package memory

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// peakLive runs fn and returns the most live heap (as marked by the
// garbage collector, which runs often meanwhile) above what was live
// before, in bytes.
func peakLive(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	live := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := live()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if l := live(); l > base && l-base > peak.Load() {
				peak.Store(l - base)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSnapshot measures exporting a context to a bundle file and
// importing the bundle into a new context of a store on disk, for 100K
// and 1M tokens of history. Besides the time, it reports the CPU time per
// operation (steadier than the time on a shared machine), the bundle's
// size, and the most live heap each operation holds above what was live
// before: export streams, so its peak stays small; import holds the
// context it builds, the size the loaded context then has anyway
// ("loaded-MiB"), and never the bundle. import-rebuild imports into an
// engine with another fan-out, which rebuilds the tree from the messages.
// fork branches a loaded context whole in the store on disk: "peak-live"
// shows what it holds beyond the records it shares with the source, and
// "file-MiB-added" what buntdb's file grows by.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		dir := b.TempDir()
		e, k := buildHistory(b, n, RenderOutline)
		file := filepath.Join(dir, "c.mcx")
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		root, err := e.ExportBundle(k, f, ExportOptions{Operator: true})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		dst, err := testOpen(b, Options{Dir: filepath.Join(dir, "store"), Now: fixedClock()})
		if err != nil {
			b.Fatal(err)
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("export/history=%dk", n/1000), func(b *testing.B) {
			b.SetBytes(root.Bytes)
			cpu := cpuTime()
			for b.Loop() {
				f, err := os.Create(file)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.ExportBundle(k, f, ExportOptions{Operator: true}); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(root.Bytes)/(1<<20), "bundle-MiB")
			b.ReportMetric(float64(peakLive(func() { e.ExportBundle(k, io.Discard, ExportOptions{Operator: true}) }))/(1<<20), "peak-live-MiB")
		})
		b.Run(fmt.Sprintf("import/history=%dk", n/1000), func(b *testing.B) {
			b.SetBytes(root.Bytes)
			i := 0
			var cpu time.Duration
			for b.Loop() {
				i++
				to := Key{Tenant: "bench", Context: fmt.Sprint("copy", i)}
				f, err := os.Open(file)
				if err != nil {
					b.Fatal(err)
				}
				c0 := cpuTime()
				res, err := dst.ImportBundle(to, f, ImportOptions{})
				cpu += cpuTime() - c0
				f.Close()
				if err != nil || res.Root.Hash != root.Hash {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := dst.Delete(to); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
			peak := peakLive(func() {
				if _, err := dst.ImportBundle(Key{Tenant: "bench", Context: "peak"}, bytes.NewReader(raw), ImportOptions{}); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(peak)/(1<<20), "peak-live-MiB")
			loaded := peakLive(func() { dst.Stats(Key{Tenant: "bench", Context: "peak"}) })
			b.ReportMetric(float64(loaded)/(1<<20), "loaded-MiB")
			if err := dst.Delete(Key{Tenant: "bench", Context: "peak"}); err != nil {
				b.Fatal(err)
			}
		})
		// A fork of the whole context in the store on disk: the records are
		// written again under the fork's keys with the source's strings.
		b.Run(fmt.Sprintf("fork/history=%dk", n/1000), func(b *testing.B) {
			src := Key{Tenant: "bench", Context: "forked-source"}
			if _, err := dst.ImportBundle(src, bytes.NewReader(raw), ImportOptions{}); err != nil {
				b.Fatal(err)
			}
			dst.Stats(src) // loaded, as a live context is
			i := 0
			var cpu time.Duration
			var grew int64
			for b.Loop() {
				i++
				size := dst.StoreBytes()
				c0 := cpuTime()
				if _, err := dst.Fork(src, fmt.Sprint("fork", i), -1, "bench"); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				b.StopTimer()
				grew = dst.StoreBytes() - size
				if err := dst.Delete(Key{Tenant: "bench", Context: fmt.Sprint("fork", i)}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(grew)/(1<<20), "file-MiB-added")
			peak := peakLive(func() {
				if _, err := dst.Fork(src, "peak-fork", -1, "bench"); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(peak)/(1<<20), "peak-live-MiB")
			dst.Delete(Key{Tenant: "bench", Context: "peak-fork"})
			dst.Delete(src)
		})
		// Into an engine that derives the tree differently (fan-out 16):
		// the tree is rebuilt from the messages.
		other, err := testOpen(b, Options{Dir: filepath.Join(dir, "other"), Now: fixedClock(), Fanout: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("import-rebuild/history=%dk", n/1000), func(b *testing.B) {
			b.SetBytes(root.Bytes)
			i := 0
			var cpu time.Duration
			for b.Loop() {
				i++
				to := Key{Tenant: "bench", Context: fmt.Sprint("rebuilt", i)}
				c0 := cpuTime()
				res, err := other.ImportBundle(to, bytes.NewReader(raw), ImportOptions{})
				cpu += cpuTime() - c0
				if err != nil || !res.Rebuilt {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := other.Delete(to); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
		})
		other.Close()
		dst.Close()
		e.Close()
	}
}

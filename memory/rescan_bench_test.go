package memory

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/policy"
)

// BenchmarkRescan measures what a user pays on the first request to a
// 1M-token context after the policy changed (an upgrade that bumps
// policy.DetectorVersion, a rule added): loading the context from a store
// on disk, rescanning it and storing what changed, against loading it
// with no rescan ("load", the baseline, in the same run). The history was
// stored with no policy. "all-six" configures the six built-in detectors,
// which find nothing in the history: the scan alone. "codes" adds a
// pattern matching a code in one user message in fifty: a few blocks and
// the gists above them change. "every-block" redacts a word nearly every
// block holds: every block and every gist is rebuilt and stored, the
// worst case. Each iteration loads a fresh copy of the store; cpu-ms/op is
// the process's CPU time, steadier than wall time on a shared machine;
// rescan-ms/op is the wall time of the rescan alone (its log line), inside
// the load.
func BenchmarkRescan(b *testing.B) {
	const n = 1_000_000
	src := b.TempDir()
	e, k := buildHistoryWith(b, n, Options{Dir: src, Now: fixedClock()})
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	var six []policy.Rule
	for _, d := range policy.Detectors() {
		six = append(six, policy.Rule{Detector: d})
	}
	for _, c := range []struct {
		name  string
		rules []policy.Rule
	}{
		{"load", nil},
		{"all-six", six},
		{"codes", append(six[:len(six):len(six)], policy.Rule{Name: "codes", Pattern: `QX-\d{4}`})},
		{"every-block", append(six[:len(six):len(six)], policy.Rule{Name: "garden", Pattern: `\bgarden\b`})},
	} {
		pol, err := policy.Compile(c.rules)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/history=%dk", c.name, n/1000), func(b *testing.B) {
			var cpu, took time.Duration
			logs := &rescanLog{}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "data")
				copyDir(b, src, dir)
				e, err := testOpen(b, Options{Dir: dir, Now: fixedClock(), Policy: pol, Logger: slog.New(logs)})
				if err != nil {
					b.Fatal(err)
				}
				start := cpuTime()
				b.StartTimer()
				if _, err := e.Stats(k); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - start
				if c.rules != nil {
					if logs.count() != i+1 || e.loaded[k.id()].rec.Policy != pol.Fingerprint() {
						b.Fatal("not rescanned")
					}
					took += time.Duration(logs.last()["took"])
				}
				e.Close()
			}
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(took)/float64(b.N)/1e6, "rescan-ms/op")
		})
	}
}

// copyDir copies the files of directory src into a new directory dst, on
// disk.
func copyDir(b *testing.B, src, dst string) {
	b.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		b.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, ent := range entries {
		if !ent.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, ent.Name()))
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, ent.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			b.Fatal(err)
		}
		if err := out.Sync(); err != nil { // not the timed store's to flush
			b.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

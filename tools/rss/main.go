// Command rss measures what MegaContext's memory costs in RAM: the resident
// set size per 1M tokens of history held in the engine's cache, the RSS of
// a process that loads more contexts than its byte budget (memory.cache_bytes)
// holds, and how long a store takes to reopen.
//
// It builds a store of --contexts MegaContexts of --tokens tokens each
// (prose from the Go distribution's comments, counted with the fakellama
// fixture's BPE-like tokenizer, about 4 bytes a token), then measures in a
// fresh child process, so that nothing of the build stays resident: RSS
// after the store is open, then after each context is loaded, with the
// garbage collector run and freed memory returned to the system first.
//
//	go run ./tools/rss --tokens 1000000 --contexts 4
//	go run ./tools/rss --tokens 1000000 --contexts 4 --cache-bytes 64MiB
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/tools/eval/gen"
)

func main() {
	tokens := flag.Int("tokens", 1_000_000, "tokens of history per MegaContext")
	contexts := flag.Int("contexts", 4, "MegaContexts in the store")
	data := flag.String("data", "", "store folder: reused when it holds a store, else built there (default: a temporary folder)")
	cacheBytes := flag.String("cache-bytes", "", "memory.cache_bytes of the measuring process, e.g. 64MiB, -1 for no bound (default: the engine's default)")
	child := flag.Bool("child", false, "internal: measure in this process")
	jsonOut := flag.Bool("json", false, "print one JSON object")
	flag.Parse()
	budget, err := parseBytes(*cacheBytes)
	if err != nil {
		log.Fatal(err)
	}
	if *child {
		if err := measure(*data, *contexts, budget); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*data, *tokens, *contexts, *cacheBytes, budget, *jsonOut); err != nil {
		log.Fatal(err)
	}
}

// parseBytes reads a size such as 64MiB, 1GB or 1048576; "" is 0.
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < -1 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n * float64(mult)), nil
}

// fakeCounter counts tokens with the fakellama fixture's tokenizer.
type fakeCounter struct{}

func (fakeCounter) Count(text string) int { return fakellama.CountTokens(text) }
func (fakeCounter) Name() string          { return "fakellama" }

func key(i int) memory.Key { return memory.Key{Tenant: "rss", Context: fmt.Sprintf("ctx-%d", i)} }

// build fills dir with n contexts of about tokens tokens each.
func build(dir string, tokens, n int) error {
	corpus, err := gen.DefaultCorpus()
	if err != nil {
		return err
	}
	var sents []string
	for _, t := range corpus.Topics {
		sents = append(sents, t.Sentences...)
	}
	eng, err := memory.Open(memory.Options{Dir: dir, Counter: fakeCounter{}})
	if err != nil {
		return err
	}
	defer eng.Close()
	r := rand.New(rand.NewPCG(7, 8))
	at := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	next := r.IntN(len(sents))
	say := func(k int) string {
		var sb strings.Builder
		for i := 0; i < k; i++ {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(sents[next%len(sents)])
			next++
		}
		return sb.String()
	}
	for c := 0; c < n; c++ {
		have := 0
		for s := 0; have < tokens; s++ {
			var msgs []memory.Message
			for t := 0; t < 10; t++ {
				u, a := say(1+r.IntN(3)), say(3+r.IntN(6))
				have += fakellama.CountTokens(u) + fakellama.CountTokens(a)
				msgs = append(msgs, wire("user", u), wire("assistant", a))
			}
			k := key(c)
			k.Thread = strconv.Itoa(s)
			if _, err := eng.Import(k, msgs, at.Add(time.Duration(s)*time.Hour)); err != nil {
				return err
			}
		}
	}
	return nil
}

// wire is a message as the proxy stores it: with the client's JSON of it.
func wire(role, text string) memory.Message {
	raw, _ := json.Marshal(map[string]string{"role": role, "content": text})
	return memory.Message{Role: role, Text: text, Raw: raw}
}

// sample is one measurement of the child process.
type sample struct {
	// Step is "open" or "load N".
	Step string `json:"step"`
	// Seconds is how long the step took; CPU is the processor time it
	// took (user and system, all threads: less sensitive to a busy machine).
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_s"`
	// RSS is the resident set size after the step (MB), with garbage
	// collected and freed memory returned to the system.
	RSS float64 `json:"rss_mb"`
	// Heap is the Go heap in use (MB).
	Heap float64 `json:"heap_mb"`
	// Charged is what the engine charges the loaded contexts against its
	// budget (MB).
	Charged float64 `json:"charged_mb"`
	// Peak is the highest RSS so far (MB).
	Peak float64 `json:"peak_rss_mb"`
	// Tokens is the history held by the contexts loaded so far.
	Tokens int `json:"tokens"`
}

// measure opens the store in dir, loads its contexts one by one, and
// prints a sample after each step.
func measure(dir string, n int, budget int64) error {
	enc := json.NewEncoder(os.Stdout)
	var eng *memory.Engine
	lastCPU := cpuTime()
	emit := func(step string, t0 time.Time, tokens int) error {
		d := time.Since(t0)
		cpu := cpuTime()
		cpuStep := cpu - lastCPU
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		lastCPU = cpuTime() // the collection above is not the next step's
		s := sample{Step: step, Seconds: d.Seconds(), CPU: cpuStep.Seconds(), RSS: float64(procStatus("VmRSS:")) / 1e6, Peak: float64(procStatus("VmHWM:")) / 1e6, Heap: float64(ms.HeapInuse) / 1e6, Tokens: tokens}
		if eng != nil {
			s.Charged = float64(charged(eng)) / 1e6
		}
		return enc.Encode(s)
	}
	if err := emit("start", time.Now(), 0); err != nil {
		return err
	}
	t0 := time.Now()
	var err error
	eng, err = memory.Open(cacheOptions(memory.Options{Dir: dir, Counter: fakeCounter{}}, budget))
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := emit("open", t0, 0); err != nil {
		return err
	}
	tokens := 0
	for i := 0; i < n; i++ {
		t0 := time.Now()
		st, err := eng.Stats(key(i))
		if err != nil {
			return err
		}
		tokens += st.Tokens
		if err := emit(fmt.Sprintf("load %d", i+1), t0, tokens); err != nil {
			return err
		}
	}
	return nil
}

// cpuTime returns the processor time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns a size field of /proc/self/status (VmRSS: the
// resident set size, VmHWM: its peak) in bytes.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func run(data string, tokens, n int, cacheFlag string, budget int64, jsonOut bool) error {
	dir := data
	if dir == "" {
		tmp, err := os.MkdirTemp("", "megacontext-rss-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	var buildTime time.Duration
	if _, err := os.Stat(dir + "/" + store.FileName); err != nil {
		t0 := time.Now()
		if err := build(dir, tokens, n); err != nil {
			return err
		}
		buildTime = time.Since(t0)
	}
	fi, err := os.Stat(dir + "/" + store.FileName)
	if err != nil {
		return err
	}
	args := []string{"--child", "--data", dir, "--contexts", strconv.Itoa(n)}
	if cacheFlag != "" {
		args = append(args, "--cache-bytes", cacheFlag)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("measuring process: %w", err)
	}
	var samples []sample
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var s sample
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return fmt.Errorf("measuring process said %q: %w", line, err)
		}
		samples = append(samples, s)
	}
	if len(samples) < 3 {
		return fmt.Errorf("measuring process gave %d samples", len(samples))
	}
	open, last := samples[1], samples[len(samples)-1]
	// Per 1M tokens of what is still loaded: under a budget some contexts
	// were evicted, and the loaded history is estimated from the charge,
	// at the first load's charge per token.
	perM, loadedTokens := 0.0, float64(last.Tokens)
	if first := samples[2]; first.Charged > 0 && first.Tokens > 0 {
		loadedTokens = last.Charged / (first.Charged / float64(first.Tokens))
	}
	if loadedTokens > 0 {
		perM = (last.RSS - open.RSS) / (loadedTokens / 1e6)
	}
	res := map[string]any{
		"store_mb": float64(fi.Size()) / 1e6, "build_s": buildTime.Seconds(), "reopen_s": open.Seconds,
		"rss_start_mb": samples[0].RSS, "rss_open_mb": open.RSS, "rss_loaded_mb": last.RSS, "tokens_loaded": last.Tokens,
		"rss_mb_per_1m_tokens": perM, "cache_bytes": budget, "samples": samples,
	}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("store: %d contexts, %.1f MB file (built in %.1f s), reopened in %.2f s\n", n, float64(fi.Size())/1e6, buildTime.Seconds(), open.Seconds)
	fmt.Printf("%-8s %9s %9s %9s %9s %9s %11s %12s\n", "step", "seconds", "CPU s", "RSS MB", "peak MB", "heap MB", "charged MB", "tokens")
	for _, s := range samples {
		fmt.Printf("%-8s %9.2f %9.2f %9.1f %9.1f %9.1f %11.1f %12d\n", s.Step, s.Seconds, s.CPU, s.RSS, s.Peak, s.Heap, s.Charged, s.Tokens)
	}
	fmt.Printf("RSS with the contexts loaded minus RSS with the store open: %.1f MB; charged against the budget: %.1f MB", last.RSS-open.RSS, last.Charged)
	if budget != 0 {
		fmt.Printf(" (memory.cache_bytes %.1f MB)", float64(budget)/1e6)
	}
	fmt.Printf("\nRSS per 1M tokens of loaded history: %.1f MB\n", perM)
	return nil
}

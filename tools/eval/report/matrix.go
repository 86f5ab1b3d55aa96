package report

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/megacontext/megacontext/tokens"
	"github.com/megacontext/megacontext/tools/eval/run"
)

// Vocab is one token vocabulary of the matrix and the budgets it is
// measured at.
type Vocab struct {
	// Name labels it in tables ("llama-bpe").
	Name string `json:"name"`
	// Counter counts every window's tokens (and the engine's).
	Counter tokens.Counter `json:"-"`
	// Budgets are the window budgets in tokens.
	Budgets []int `json:"budgets"`
}

// VocabName is the label of a counter: its name without the
// "llama.cpp:" prefix of native tokenizers.
func VocabName(c tokens.Counter) string {
	return strings.TrimPrefix(c.Name(), "llama.cpp:")
}

// Variant is one configuration of the optional assets.
type Variant struct {
	// Name labels it in tables: VariantAssets or VariantNoAssets.
	Name string `json:"name"`
	// Assets names what it has installed ("WordNet, GloVe"; "none").
	Assets string `json:"assets"`
	// Engine carries the assets (Expander, Vectors, Embedder) for the
	// megacontext strategy; rag gets the same expansions from it.
	Engine run.EngineOptions `json:"-"`
}

// Variant names.
const (
	// VariantAssets runs with every optional asset installed here.
	VariantAssets = "assets"
	// VariantNoAssets runs the pure-Go fallback: no thesaurus, no word
	// vectors, no embeddings.
	VariantNoAssets = "no assets"
)

// Config is a matrix to run.
type Config struct {
	// Sets are the evaluated sets.
	Sets []Set
	// Vocabs are the vocabularies with their budgets.
	Vocabs []Vocab
	// Variants are the asset configurations.
	Variants []Variant
	// Strategies are the strategies compared (empty: all of run's).
	Strategies []string
	// Base holds the harness options shared by every cell (per-message
	// overhead, rag chunk size, engine tuning); each cell sets Budgets,
	// Counter, Strategies and the variant's assets.
	Base run.Options
	// Jobs bounds the cells run at once (0: 2, at most GOMAXPROCS).
	Jobs int
	// Sources supply the generators' prose (nil: the defaults).
	Sources *Sources
	// Log, when set, receives a line per finished cell and, with Verbose,
	// the harness's line per case and strategy.
	Log io.Writer
	// Verbose passes the harness's progress lines to Log.
	Verbose bool
}

// DefaultJobs is the default bound on cells run at once: the development
// machine has 2 shared cores.
const DefaultJobs = 2

// Cell is one set × vocabulary × variant of the matrix.
type Cell struct {
	Set     string `json:"set"`
	Vocab   string `json:"vocab"`
	Variant string `json:"variant"`
	// Report is what the harness measured, every strategy at every budget
	// of the vocabulary.
	Report *run.Report `json:"report"`
	// Seconds is the cell's wall time.
	Seconds float64 `json:"seconds"`
}

// Matrix is the outcome of Run.
type Matrix struct {
	Sets     []Set     `json:"sets"`
	Vocabs   []Vocab   `json:"vocabs"`
	Variants []Variant `json:"variants"`
	// Cells are in the order sets, then vocabularies, then variants.
	Cells []Cell `json:"cells"`
	// Jobs is how many cells ran at once; Seconds the whole run's wall
	// time, on CPUs logical CPUs.
	Jobs    int     `json:"jobs"`
	Seconds float64 `json:"seconds"`
	CPUs    int     `json:"cpus"`
}

// Cell returns the cell of a set, vocabulary and variant, nil when absent.
func (m *Matrix) Cell(set, vocab, variant string) *Cell {
	for i := range m.Cells {
		c := &m.Cells[i]
		if c.Set == set && c.Vocab == vocab && c.Variant == variant {
			return c
		}
	}
	return nil
}

// Result returns a cell's result for a strategy at a budget.
func (c *Cell) Result(strategy string, budget int) (run.Result, bool) {
	if c == nil || c.Report == nil {
		return run.Result{}, false
	}
	for _, r := range c.Report.Results {
		if r.Strategy == strategy && r.Budget == budget {
			return r, true
		}
	}
	return run.Result{}, false
}

// Run evaluates every cell of the matrix, at most cfg.Jobs at once. Cells
// regenerate their set's cases (generation is deterministic and takes
// seconds), so that only the cases of running cells are in memory.
func Run(ctx context.Context, cfg Config) (*Matrix, error) {
	if len(cfg.Sets) == 0 || len(cfg.Vocabs) == 0 || len(cfg.Variants) == 0 {
		return nil, fmt.Errorf("report: the matrix needs at least one set, vocabulary and variant")
	}
	jobs := cfg.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	jobs = min(jobs, runtime.GOMAXPROCS(0))
	src := cfg.Sources
	if src == nil {
		src = &Sources{}
	}
	m := &Matrix{Sets: cfg.Sets, Vocabs: cfg.Vocabs, Variants: cfg.Variants, Jobs: jobs, CPUs: runtime.NumCPU()}
	type job struct {
		cell    *Cell
		set     Set
		vocab   Vocab
		variant Variant
	}
	var todo []job
	for _, s := range cfg.Sets {
		for _, v := range cfg.Vocabs {
			for _, va := range cfg.Variants {
				m.Cells = append(m.Cells, Cell{Set: s.Name(), Vocab: v.Name, Variant: va.Name})
			}
		}
	}
	i := 0
	for _, s := range cfg.Sets {
		for _, v := range cfg.Vocabs {
			for _, va := range cfg.Variants {
				todo = append(todo, job{&m.Cells[i], s, v, va})
				i++
			}
		}
	}
	// The biggest cells first, so that the last one to finish is short.
	slices.SortStableFunc(todo, func(a, b job) int { return cost(b.set, b.vocab) - cost(a.set, a.vocab) })

	var logMu sync.Mutex // serializes lines from concurrent cells
	logf := func(format string, args ...any) {
		if cfg.Log == nil {
			return
		}
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(cfg.Log, format+"\n", args...)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex // guards firstErr
		firstErr error
	)
	sem := make(chan struct{}, jobs)
	t0 := time.Now()
	for _, j := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%s × %s × %s", j.cell.Set, j.cell.Vocab, j.cell.Variant)
			opts := cfg.Base
			opts.Budgets = j.vocab.Budgets
			opts.Counter = j.vocab.Counter
			opts.Strategies = cfg.Strategies
			opts.Engine = opts.Engine.WithAssets(j.variant.Engine)
			opts.Log = nil
			if cfg.Verbose && cfg.Log != nil {
				opts.Log = &prefixWriter{mu: &logMu, w: cfg.Log, prefix: "[" + name + "] "}
			}
			c0 := time.Now()
			rep, err := run.Run(ctx, j.set.Cases(src), opts)
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("report: %s: %w", name, err)
				}
				errMu.Unlock()
				cancel()
				return
			}
			j.cell.Report = rep
			j.cell.Seconds = time.Since(c0).Seconds()
			logf("report: %s done in %s", name, time.Since(c0).Round(time.Second))
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.Seconds = time.Since(t0).Seconds()
	return m, nil
}

// cost ranks cells by expected run time: history tokens times budgets.
func cost(s Set, v Vocab) int {
	total := 0
	for _, z := range s.Sizes {
		total += z
	}
	return total * len(s.Seeds) * len(v.Budgets)
}

// prefixWriter prefixes each write (the harness writes whole lines) and
// serializes them with the matrix's other log lines.
type prefixWriter struct {
	mu     *sync.Mutex // shared with the matrix's log lines
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

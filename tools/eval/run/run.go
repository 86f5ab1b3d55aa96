// Package run is the evaluation harness of DESIGN.md §7: it replays each
// case's history into a strategy (the MegaContext engine, or the rag and
// truncate baselines), asks every question at every budget, and measures
// whether the assembled working window holds the evidence (strict) and the
// answer (lenient), how many tokens it uses, how long assembly takes and
// how much of it stays unchanged from one question to the next.
//
// Every strategy is held to the same budget rule: the window's messages,
// counted with one token counter, plus a fixed per-message overhead, the
// question included.
package run

import (
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/megacontext/megacontext/tokens"
	"github.com/megacontext/megacontext/tools/eval/dataset"
	"github.com/megacontext/megacontext/tools/eval/gen"
)

// DefaultPerMessage is the chat-template overhead charged per message.
const DefaultPerMessage = 4

// Options configure Run.
type Options struct {
	// Budgets are the window budgets in tokens.
	Budgets []int
	// Strategies are strategy names (see Strategies); empty runs all.
	Strategies []string
	// Counter counts tokens; nil uses tokens.Estimate.
	Counter tokens.Counter
	// PerMessage is the per-message overhead; 0 uses DefaultPerMessage.
	PerMessage int
	// Engine tunes the megacontext strategy.
	Engine EngineOptions
	// ChunkTokens is the rag chunk size; 0 uses DefaultChunkTokens.
	ChunkTokens int
	// Log, when set, receives one progress line per case and strategy.
	Log io.Writer
	// DumpDir, when set, receives the window of every question whose
	// evidence was not recalled, one file each, for inspection.
	DumpDir string
}

// Report is the outcome of a run.
type Report struct {
	// Counter names the tokenizer every count used.
	Counter string `json:"counter"`
	// Cases describes the cases evaluated, in order.
	Cases []CaseInfo `json:"cases"`
	// Results has one entry per strategy and budget, strategies in the
	// order asked, then budgets in the order asked.
	Results []Result `json:"results"`
}

// CaseInfo describes one evaluated case.
type CaseInfo struct {
	ID        string `json:"id"`
	Size      string `json:"size"`
	Questions int    `json:"questions"`
	// HistoryTokens is the history's size by the run's counter.
	HistoryTokens int `json:"history_tokens"`
	// IngestMS is the time each strategy took to ingest the history.
	IngestMS map[string]float64 `json:"ingest_ms"`
}

// Result aggregates one strategy at one budget over every question.
type Result struct {
	Strategy  string `json:"strategy"`
	Budget    int    `json:"budget"`
	Questions int    `json:"questions"`
	// EvidenceRecall is the share of questions with every evidence string
	// verbatim in the window (the question itself not counted).
	EvidenceRecall float64 `json:"evidence_recall"`
	// AnswerRecall is the share with every answer part anywhere in the
	// window, case-insensitively (the question itself not counted).
	AnswerRecall float64 `json:"answer_recall"`
	// WindowTokens is the mean window size, per-message overhead included.
	WindowTokens float64 `json:"window_tokens"`
	// AssemblyMSP50 and AssemblyMSP99 are assembly latency percentiles.
	AssemblyMSP50 float64 `json:"assembly_ms_p50"`
	AssemblyMSP99 float64 `json:"assembly_ms_p99"`
	// PrefixStability is the mean share of a window's tokens unchanged from
	// the previous question's window (same case): the token weight of the
	// longest common subsequence of their lines over the window's tokens.
	PrefixStability float64 `json:"prefix_stability"`
	// CachePrefix is the mean share of a window's tokens in the common
	// prefix with the previous window: what an upstream prompt cache reuses.
	CachePrefix float64 `json:"cache_prefix"`
	// OverBudget counts windows whose tokens exceeded the budget.
	OverBudget int `json:"over_budget"`
	// ByType and BySize break recall down by question type and by
	// history size.
	ByType map[string]Group `json:"by_type"`
	BySize map[string]Group `json:"by_size"`
	// Missed lists the questions whose evidence was not recalled, as
	// "case/question" ids, in the order asked.
	Missed []string `json:"missed,omitempty"`
}

// Group is recall over a subset of the questions.
type Group struct {
	Questions      int     `json:"questions"`
	EvidenceRecall float64 `json:"evidence_recall"`
	AnswerRecall   float64 `json:"answer_recall"`
}

// SizeLabel names a case's history size: its bytes/4 token estimate
// rounded to the nearest power of two, formatted like "32k".
func SizeLabel(c *dataset.Case) string {
	n := c.HistoryTokens()
	if n <= 1 {
		return "1"
	}
	lo := 1 << (bits.Len(uint(n)) - 1)
	if float64(n)/float64(lo) > math.Sqrt2 {
		lo <<= 1
	}
	return gen.FormatSize(lo)
}

// RunFile evaluates the dataset file at path (JSON Lines, plain or gzip).
func RunFile(ctx context.Context, path string, opts Options) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	rep, err := Run(ctx, dataset.Cases(f), opts)
	if err != nil {
		return nil, fmt.Errorf("eval %s: %w", path, err)
	}
	return rep, nil
}

// counts accumulates recall.
type counts struct{ n, ev, ans int }

func (c *counts) add(ev, ans bool) {
	c.n++
	if ev {
		c.ev++
	}
	if ans {
		c.ans++
	}
}

func (c counts) group() Group {
	if c.n == 0 {
		return Group{}
	}
	return Group{Questions: c.n, EvidenceRecall: float64(c.ev) / float64(c.n), AnswerRecall: float64(c.ans) / float64(c.n)}
}

// acc accumulates one strategy and budget.
type acc struct {
	all       counts
	byType    map[string]*counts
	bySize    map[string]*counts
	tokens    int64
	latencies []time.Duration
	stability float64
	cachePre  float64
	pairs     int
	over      int
	missed    []string
}

func bump(m map[string]*counts, k string, ev, ans bool) {
	c := m[k]
	if c == nil {
		c = &counts{}
		m[k] = c
	}
	c.add(ev, ans)
}

// Run evaluates cases. It ingests each case once per strategy, then asks
// every question at every budget; assembly must not change the history.
func Run(ctx context.Context, cases iter.Seq2[dataset.Case, error], opts Options) (*Report, error) {
	if len(opts.Budgets) == 0 {
		return nil, fmt.Errorf("eval: no budgets")
	}
	for _, b := range opts.Budgets {
		if b <= 0 {
			return nil, fmt.Errorf("eval: budget %d is not positive", b)
		}
	}
	names := opts.Strategies
	if len(names) == 0 {
		names = Strategies()
	}
	var strats []Strategy
	seen := map[string]bool{}
	for _, n := range names {
		s, err := NewStrategy(n)
		if err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, fmt.Errorf("eval: strategy %q listed twice", n)
		}
		seen[n] = true
		strats = append(strats, s)
	}
	env := &Env{Counter: opts.Counter, PerMessage: opts.PerMessage, Engine: opts.Engine, ChunkTokens: opts.ChunkTokens}
	if env.Counter == nil {
		env.Counter = tokens.Estimate{}
	}
	if env.PerMessage <= 0 {
		env.PerMessage = DefaultPerMessage
	}
	rep := &Report{Counter: env.Counter.Name()}
	accs := make([]*acc, len(strats)*len(opts.Budgets))
	for i := range accs {
		accs[i] = &acc{byType: map[string]*counts{}, bySize: map[string]*counts{}}
	}
	for c, err := range cases {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info := CaseInfo{ID: c.ID, Size: SizeLabel(&c), Questions: len(c.Questions), IngestMS: map[string]float64{}}
		for _, s := range c.Sessions {
			for _, m := range s.Messages {
				info.HistoryTokens += env.Counter.Count(m.Content)
			}
		}
		for si, st := range strats {
			t0 := time.Now()
			loaded, err := st.Load(&c, env)
			if err != nil {
				return nil, fmt.Errorf("case %s: %s: %w", c.ID, st.Name(), err)
			}
			ingest := time.Since(t0)
			info.IngestMS[st.Name()] = ms(ingest)
			t1 := time.Now()
			for bi, budget := range opts.Budgets {
				a := accs[si*len(opts.Budgets)+bi]
				if err := evalCase(ctx, &c, info.Size, st.Name(), loaded, budget, env, a, opts.DumpDir); err != nil {
					loaded.Close()
					return nil, fmt.Errorf("case %s: %s at %d: %w", c.ID, st.Name(), budget, err)
				}
			}
			if err := loaded.Close(); err != nil {
				return nil, err
			}
			if opts.Log != nil {
				fmt.Fprintf(opts.Log, "eval: case %s (%s, %d tokens, %d questions): %s ingest %s, %d windows %s\n",
					c.ID, info.Size, info.HistoryTokens, len(c.Questions), st.Name(),
					ingest.Round(time.Millisecond), len(c.Questions)*len(opts.Budgets), time.Since(t1).Round(time.Millisecond))
			}
		}
		rep.Cases = append(rep.Cases, info)
	}
	for si, st := range strats {
		for bi, budget := range opts.Budgets {
			rep.Results = append(rep.Results, accs[si*len(opts.Budgets)+bi].result(st.Name(), budget))
		}
	}
	return rep, nil
}

// evalCase asks every question of c at one budget.
func evalCase(ctx context.Context, c *dataset.Case, size, strategy string, l Loaded, budget int, env *Env, a *acc, dumpDir string) error {
	var prev string
	for qi, q := range c.Questions {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		w, err := l.Assemble(q.Question, budget)
		lat := time.Since(t0)
		if err != nil {
			return fmt.Errorf("question %s: %w", q.ID, err)
		}
		if n := len(w.Messages); n == 0 || w.Messages[n-1].Content != q.Question {
			return fmt.Errorf("question %s: the window does not end with the question", q.ID)
		}
		ctxText := w.Context()
		var missing []string
		for _, e := range q.Evidence {
			if !strings.Contains(ctxText, e) {
				missing = append(missing, e)
			}
		}
		ev := len(missing) == 0
		ans := answerIn(ctxText, q)
		a.all.add(ev, ans)
		if !ev {
			a.missed = append(a.missed, c.ID+"/"+q.ID)
		}
		bump(a.byType, q.Type, ev, ans)
		bump(a.bySize, size, ev, ans)
		n := w.Tokens(env.Counter, env.PerMessage)
		a.tokens += int64(n)
		if n > budget {
			a.over++
		}
		a.latencies = append(a.latencies, lat)
		text := w.Text()
		if qi > 0 {
			if total := env.Counter.Count(text); total > 0 {
				p := commonPrefix(prev, text)
				a.cachePre += float64(env.Counter.Count(text[:p])) / float64(total)
				a.stability += float64(unchangedTokens(env.Counter, prev, text)) / float64(total)
				a.pairs++
			}
		}
		prev = text
		if dumpDir != "" && !ev {
			if err := dump(dumpDir, c.ID, strategy, budget, q, missing, ans, n, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// answerIn reports whether every part of q's answer occurs in text,
// ignoring case.
func answerIn(text string, q dataset.Question) bool {
	lower := strings.ToLower(text)
	for _, p := range q.AnswerParts() {
		if !strings.Contains(lower, strings.ToLower(strings.TrimSpace(p))) {
			return false
		}
	}
	return true
}

// unchangedTokens returns the tokens of cur's lines that the longest
// common subsequence of lines shares with prev.
func unchangedTokens(c tokens.Counter, prev, cur string) int {
	a, b := strings.Split(prev, "\n"), strings.Split(cur, "\n")
	w := make([]int, len(b))
	for j, l := range b {
		w[j] = c.Count(l) + 1
	}
	// dp[i][j]: best weight of a common subsequence of a[i:], b[j:].
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			best := max(dp[i+1][j], dp[i][j+1])
			if a[i] == b[j] {
				best = max(best, dp[i+1][j+1]+w[j])
			}
			dp[i][j] = best
		}
	}
	return min(dp[0][0], c.Count(cur))
}

// commonPrefix returns the length in bytes of the common prefix of a and
// b, backed off to a UTF-8 boundary.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	for i > 0 && i < len(b) && b[i]&0xC0 == 0x80 {
		i--
	}
	return i
}

func (a *acc) result(strategy string, budget int) Result {
	r := Result{Strategy: strategy, Budget: budget, OverBudget: a.over, ByType: map[string]Group{}, BySize: map[string]Group{}, Missed: a.missed}
	g := a.all.group()
	r.Questions, r.EvidenceRecall, r.AnswerRecall = g.Questions, g.EvidenceRecall, g.AnswerRecall
	if a.all.n > 0 {
		r.WindowTokens = float64(a.tokens) / float64(a.all.n)
	}
	if a.pairs > 0 {
		r.PrefixStability = a.stability / float64(a.pairs)
		r.CachePrefix = a.cachePre / float64(a.pairs)
	}
	slices.Sort(a.latencies)
	r.AssemblyMSP50 = ms(percentile(a.latencies, 0.50))
	r.AssemblyMSP99 = ms(percentile(a.latencies, 0.99))
	for k, c := range a.byType {
		r.ByType[k] = c.group()
	}
	for k, c := range a.bySize {
		r.BySize[k] = c.group()
	}
	return r
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// dump writes a failing question's window for inspection.
func dump(dir, caseID, strategy string, budget int, q dataset.Question, missing []string, ans bool, n int, w Window) error {
	d := filepath.Join(dir, safeName(caseID))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "strategy: %s\nbudget: %d\nwindow tokens: %d\ntype: %s\nquestion: %s\nanswer: %s (in window: %v)\n",
		strategy, budget, n, q.Type, q.Question, q.Answer, ans)
	for _, e := range q.Evidence {
		state := "present"
		if slices.Contains(missing, e) {
			state = "MISSING"
		}
		fmt.Fprintf(&sb, "evidence [%s]: %s\n", state, e)
	}
	sb.WriteString("\n===== window =====\n")
	sb.WriteString(w.Text())
	if w.Notes != "" {
		sb.WriteString("===== entries =====\n")
		sb.WriteString(w.Notes)
	}
	name := fmt.Sprintf("%s-%d-%s.txt", strategy, budget, safeName(q.ID))
	return os.WriteFile(filepath.Join(d, name), []byte(sb.String()), 0o644)
}

// safeName makes s usable as a file name.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		return "_" + string(b)
	}
	return string(b)
}

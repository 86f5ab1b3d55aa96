package run

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/thesaurus"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/tokens"
	"github.com/megacontext/megacontext/tools/eval/dataset"
)

const fixture = "../testdata/small.jsonl"

// minMegaContextEvidenceRecall guards the engine's quality on the fixture
// at budget 4096 with the token estimate and no thesaurus: about 5 points
// below the 88.9% (32 of 36) measured when it was set. Raise it when the
// engine improves.
const minMegaContextEvidenceRecall = 0.84

// minMegaContextStability guards the share of the window unchanged between
// consecutive questions at 4096 (the outline layout). Since the focus zone
// may claim half the budget before the outline gets its share (the rag
// floor, issue 9), consecutive unrelated questions share less: 71.5% was
// measured when it was lowered from 0.80 (88.7% before the floor).
const minMegaContextStability = 0.65

// minThesaurusEvidenceRecall is the same guard with WordNet expansion:
// 100% (36 of 36) was measured when it was set.
const minThesaurusEvidenceRecall = 0.95

func runFixture(t *testing.T, budgets ...int) *Report {
	t.Helper()
	rep, err := RunFile(context.Background(), fixture, Options{Budgets: budgets})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestFixtureRecallWithThesaurus runs the fixture with WordNet expansion
// (installed by `make wordnet`; CI installs it, so there it must run).
func TestFixtureRecallWithThesaurus(t *testing.T) {
	th, err := thesaurus.Open(filepath.Join("..", "..", "..", ".wordnet"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("WordNet missing in CI (run `make wordnet`): %v", err)
		}
		t.Skipf("WordNet not installed (run `make wordnet`): %v", err)
	}
	rep, err := RunFile(context.Background(), fixture, Options{Budgets: []int{4096}, Strategies: []string{StrategyMegaContext}, Engine: EngineOptions{Expander: th}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.EvidenceRecall < minThesaurusEvidenceRecall || r.OverBudget != 0 {
		t.Fatalf("with the thesaurus: evidence recall %.3f (want >= %.2f), %d windows over budget", r.EvidenceRecall, minThesaurusEvidenceRecall, r.OverBudget)
	}
}

func TestFixtureRecall(t *testing.T) {
	rep := runFixture(t, 512, 4096)
	if rep.Counter != (tokens.Estimate{}).Name() {
		t.Errorf("counter %q", rep.Counter)
	}
	if len(rep.Cases) != 2 {
		t.Fatalf("%d cases, want 2", len(rep.Cases))
	}
	at := map[string]Result{}
	for _, r := range rep.Results {
		t.Logf("%-12s %5d: evidence %.3f answer %.3f tokens %.0f prefix %.3f p50 %.2fms",
			r.Strategy, r.Budget, r.EvidenceRecall, r.AnswerRecall, r.WindowTokens, r.PrefixStability, r.AssemblyMSP50)
		if r.Questions != 36 {
			t.Errorf("%s/%d: %d questions, want 36", r.Strategy, r.Budget, r.Questions)
		}
		if r.OverBudget != 0 {
			t.Errorf("%s/%d: %d windows over budget", r.Strategy, r.Budget, r.OverBudget)
		}
		if r.WindowTokens <= 0 || r.WindowTokens > float64(r.Budget) {
			t.Errorf("%s/%d: mean window %.0f tokens", r.Strategy, r.Budget, r.WindowTokens)
		}
		if r.AssemblyMSP50 < 0 || r.AssemblyMSP99 < r.AssemblyMSP50 {
			t.Errorf("%s/%d: latency p50 %v p99 %v", r.Strategy, r.Budget, r.AssemblyMSP50, r.AssemblyMSP99)
		}
		for name, groups := range map[string]map[string]Group{"type": r.ByType, "size": r.BySize} {
			n := 0
			for _, g := range groups {
				n += g.Questions
			}
			if n != r.Questions {
				t.Errorf("%s/%d: by %s sums to %d questions", r.Strategy, r.Budget, name, n)
			}
		}
		if len(r.ByType) != len(dataset.Types()) {
			t.Errorf("%s/%d: %d types", r.Strategy, r.Budget, len(r.ByType))
		}
		if g, ok := r.BySize["8k"]; !ok || g.Questions != 36 {
			t.Errorf("%s/%d: by size %v, want all 36 in 8k", r.Strategy, r.Budget, r.BySize)
		}
		if r.Budget == 4096 {
			at[r.Strategy] = r
		}
	}
	mc, rg, tr := at[StrategyMegaContext], at[StrategyRAG], at[StrategyTruncate]
	if mc.EvidenceRecall < minMegaContextEvidenceRecall {
		t.Errorf("megacontext evidence recall %.3f at 4096, below the committed %.2f", mc.EvidenceRecall, minMegaContextEvidenceRecall)
	}
	if mc.PrefixStability < minMegaContextStability {
		t.Errorf("megacontext prefix stability %.3f at 4096, below the committed %.2f", mc.PrefixStability, minMegaContextStability)
	}
	// The baselines must be sane: retrieval finds most planted facts on an
	// 8k history, truncation only the recent ones, and truncation's window
	// changes only by its question.
	if rg.EvidenceRecall < 0.6 || rg.EvidenceRecall <= tr.EvidenceRecall {
		t.Errorf("rag evidence recall %.3f (truncate %.3f)", rg.EvidenceRecall, tr.EvidenceRecall)
	}
	if tr.EvidenceRecall <= 0 || tr.EvidenceRecall >= 0.7 {
		t.Errorf("truncate evidence recall %.3f, want some but not most", tr.EvidenceRecall)
	}
	if tr.PrefixStability < 0.9 {
		t.Errorf("truncate prefix stability %.3f", tr.PrefixStability)
	}
	if rg.WindowTokens < 0.8*4096 || tr.WindowTokens < 0.8*4096 {
		t.Errorf("baselines leave budget unused: rag %.0f, truncate %.0f tokens", rg.WindowTokens, tr.WindowTokens)
	}

	// The JSON has the documented shape.
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []map[string]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"strategy", "budget", "questions", "evidence_recall", "answer_recall", "window_tokens",
		"assembly_ms_p50", "assembly_ms_p99", "prefix_stability", "by_type", "by_size"} {
		if _, ok := doc.Results[0][k]; !ok {
			t.Errorf("JSON result lacks %q", k)
		}
	}

	var table bytes.Buffer
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"megacontext", "rag", "truncate", "multi-hop", "8k (36)"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, rep); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		if _, err := dec.Token(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("SVG is not well-formed: %v", err)
			}
			break
		}
	}
}

// Assembling depends only on the history and on the questions asked
// before it: two loads of a case asked the same questions give the same
// windows. Only megacontext remembers the previous window (hysteresis);
// the baselines give the same window for the same question every time.
func TestAssembleIsDeterministic(t *testing.T) {
	cases, err := dataset.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	c := &cases[0]
	env := &Env{Counter: tokens.Estimate{}, PerMessage: DefaultPerMessage}
	a, b := c.Questions[0].Question, c.Questions[len(c.Questions)-1].Question
	ask := func(s Strategy) []Window {
		l, err := s.Load(c, env)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var ws []Window
		for _, q := range []string{a, b, a} {
			w, err := l.Assemble(q, 2048)
			if err != nil {
				t.Fatal(err)
			}
			if n := w.Tokens(env.Counter, env.PerMessage); n > 2048 {
				t.Errorf("%s: %d tokens over 2048", s.Name(), n)
			}
			ws = append(ws, w)
		}
		return ws
	}
	for _, name := range Strategies() {
		s, err := NewStrategy(name)
		if err != nil {
			t.Fatal(err)
		}
		first, second := ask(s), ask(s)
		if !reflect.DeepEqual(first, second) {
			t.Errorf("%s: two loads asked the same questions gave different windows", name)
		}
		if name != StrategyMegaContext && !reflect.DeepEqual(first[0], first[2]) {
			t.Errorf("%s: the same question gave different windows", name)
		}
	}
}

// assetsFor returns the engine options with the optional assets installed
// in the repository (WordNet, GloVe): CI installs them all, so there the
// real path runs.
func assetsFor(t *testing.T) EngineOptions {
	t.Helper()
	var eo EngineOptions
	root := filepath.Join("..", "..", "..")
	if th, err := thesaurus.Open(filepath.Join(root, ".wordnet")); err == nil {
		eo.Expander = th
	} else if os.Getenv("CI") != "" {
		t.Fatalf("WordNet missing in CI (run `make assets`): %v", err)
	}
	if v, err := glove.Open(filepath.Join(root, ".glove")); err == nil {
		t.Cleanup(func() { v.Close() })
		eo.Vectors = v
	} else if os.Getenv("CI") != "" {
		t.Fatalf("GloVe missing in CI (run `make assets`): %v", err)
	}
	return eo
}

// The rag floor (issue 9): on every committed fixture, at every budget,
// with the same expansions for both, the engine's window holds the
// evidence of every question rag's window holds. MegaContext is retrieval
// plus structure, never retrieval minus.
func TestRagFloor(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join("..", "testdata", "*.jsonl"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	eo := assetsFor(t)
	if eo.Expander == nil || eo.Vectors == nil {
		// Without WordNet and GloVe a lexical gap ("couch" for "sofa") is
		// found by neither, and which one holds it by luck (rag's larger
		// chunks, more often) decides the question: the floor is promised
		// with the expansions both are given (CI installs them).
		t.Skip("skipping: the rag floor is checked with the assets installed (make assets)")
	}
	budgets := []int{512, 1024, 2048, 4096, 8192}
	for _, f := range fixtures {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rep, err := RunFile(context.Background(), f, Options{Budgets: budgets, Strategies: []string{StrategyMegaContext, StrategyRAG}, Engine: eo})
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range budgets {
				mc, rg := rep.Results[i], rep.Results[len(budgets)+i]
				t.Logf("%5d: megacontext %.3f, rag %.3f", b, mc.EvidenceRecall, rg.EvidenceRecall)
				missed := map[string]bool{}
				for _, q := range rg.Missed {
					missed[q] = true
				}
				for _, q := range mc.Missed {
					if !missed[q] {
						t.Errorf("budget %d: %s recalled by rag, missed by megacontext", b, q)
					}
				}
			}
		})
	}
}

func TestChunkText(t *testing.T) {
	count := tokens.Estimate{}.Count
	text := strings.Repeat("Short sentence here. ", 40) + strings.Repeat("word ", 300) + "x" + strings.Repeat("y", 900) + " end.\nNew line? Yes!"
	for _, size := range []int{8, 32, 128} {
		chunks := chunkText(text, size, count)
		if got := strings.Join(chunks, ""); got != text {
			t.Fatalf("size %d: chunks do not concatenate back to the text", size)
		}
		for _, ch := range chunks {
			if n := count(ch); n > size && len(strings.Fields(ch)) > 1 {
				t.Errorf("size %d: chunk of %d tokens: %q", size, n, ch)
			}
		}
	}
	if got := chunkText("tiny", 128, count); len(got) != 1 || got[0] != "tiny" {
		t.Errorf("short text: %q", got)
	}
	if got := chunkText("", 128, count); got != nil {
		t.Errorf("empty text: %q", got)
	}
}

func TestCommonPrefix(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"abc", "abd", 2},
		{"abc", "abc", 3},
		{"", "x", 0},
		{"aé", "aè", 1}, // never inside a rune
	} {
		if got := commonPrefix(tc.a, tc.b); got != tc.want {
			t.Errorf("commonPrefix(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSizeLabel(t *testing.T) {
	mk := func(bytes int) *dataset.Case {
		return &dataset.Case{Sessions: []dataset.Session{{Messages: []dataset.Message{{Content: strings.Repeat("x", bytes)}}}}}
	}
	for _, tc := range []struct {
		bytes int
		want  string
	}{
		{4 * 31000, "32k"}, {4 * 36000, "32k"}, {4 * 120000, "128k"}, {4 * 540000, "512k"}, {4 * 8192, "8k"},
	} {
		if got := SizeLabel(mk(tc.bytes)); got != tc.want {
			t.Errorf("%d bytes: %s, want %s", tc.bytes, got, tc.want)
		}
	}
}

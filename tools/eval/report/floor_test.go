package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/thesaurus"
	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/tools/eval/run"
)

// repoRoot is the repository root seen from this package's folder, where
// `make native wordnet prose` install their folders; ../shared sits beside it.
var repoRoot = filepath.Join("..", "..", "..")

// floorBudgets are the budgets the CI floor check runs at (issue 9).
var floorBudgets = []int{512, 1024, 4096}

// floorSize is the history size of each dev seed's case in the CI check:
// small enough for CI's two cores, large enough that at 512 tokens the
// window must choose (30K tokens by llama-bpe, 74K by stories260K).
const floorSize = 32 << 10

// needInCI fails the test in CI, where `make native wordnet prose` always
// ran, and skips it elsewhere, with the reason.
func needInCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// floorVocabs loads the real vocabularies of ../shared (the Llama 3 one
// and the small, token-expensive one of stories260K.gguf) through the
// native library; the test skips when ../shared is absent.
func floorVocabs(t *testing.T) []Vocab {
	t.Helper()
	shared := filepath.Join(repoRoot, "..", "shared")
	files := []string{
		filepath.Join(shared, "vocab", "ggml-vocab-llama-bpe.gguf"),
		filepath.Join(shared, "models", "stories260K.gguf"),
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("the rag floor check needs the real vocabularies of ../shared: %v", err)
		}
	}
	dir := os.Getenv(native.EnvDir)
	if dir == "" {
		dir = filepath.Join(repoRoot, native.DefaultDir)
	}
	lib, err := native.Open(dir)
	if err != nil {
		needInCI(t, "the rag floor check counts tokens with the native library (run `make native`): %v", err)
	}
	var out []Vocab
	for _, f := range files {
		tok, err := lib.LoadVocab(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tok.Close() })
		out = append(out, Vocab{Name: VocabName(tok), Counter: tok, Budgets: floorBudgets})
	}
	return out
}

// installedAssets is the variant with whatever optional assets are
// installed in the repository (CI installs them all).
func installedAssets(t *testing.T) Variant {
	t.Helper()
	va := Variant{Name: VariantAssets}
	var names []string
	if th, err := thesaurus.Open(filepath.Join(repoRoot, ".wordnet")); err == nil {
		va.Engine.Expander = th
		names = append(names, "WordNet")
	} else {
		needInCI(t, "WordNet missing in CI (run `make wordnet`): %v", err)
	}
	if v, err := glove.Open(filepath.Join(repoRoot, ".glove")); err == nil {
		t.Cleanup(func() { v.Close() })
		va.Engine.Vectors = v
		names = append(names, "GloVe")
	} else {
		needInCI(t, "GloVe missing in CI (run `make glove`): %v", err)
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	va.Assets = strings.Join(names, ", ")
	return va
}

// minDevRecall is the floor on absolute evidence recall of the CI sets,
// with the installed assets, at the two target budgets: 4096 with
// llama-bpe, 1024 with stories260K. Each is about ten points below what
// was measured when it was set (in parentheses; recall is deterministic),
// so that a regression of 3 of the 27 docs questions or 10 of the 99 chat
// questions fails and tuning has room; raise them as the engine improves.
var minDevRecall = map[floorCell]float64{
	{"chat dev", "llama-bpe", 4096}:   0.65, // (75.8 %)
	{"chat dev", "stories260K", 1024}: 0.45, // (55.6 %)
	{"docs dev", "llama-bpe", 4096}:   0.90, // (100 %)
	{"docs dev", "stories260K", 1024}: 0.85, // (96.3 %)
}

// floorCell names a set, vocabulary and budget of the CI check.
type floorCell struct {
	set, vocab string
	budget     int
}

// knownBelowRag lists the cells where the engine is known to recall less
// than rag, each with why; the check reports them without failing, fails
// on any other, and fails when a known one holds again (take it off the
// list: the floor only ever rises). Empty since docs dev × stories260K ×
// 512 (multi-evidence) holds: a small window's details may claim all but
// an eighth of it (memory's detailShare).
var knownBelowRag = map[floorCell]string{}

// TestRagFloor is issue 9 item 5's floor, checked in CI on every set and at
// every budget: on small but real sets of both generators (the chat
// generator's dev seeds 1, 2 and 3, the docs generator's dev seed 1, one
// 32K case each), with the real vocabularies (llama-bpe and stories260K) at
// 512, 1024 and 4096 tokens, and whatever assets are installed, the
// engine's overall evidence recall is at least rag's, per set, vocabulary
// and budget (rag retrieving with the same budget and the same
// expansions). See Matrix.Floor for why types are not held one by one.
// It also holds the engine to minDevRecall.
func TestRagFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("the rag floor check runs the harness on 4 sets × budgets (about a minute)")
	}
	vocabs := floorVocabs(t)
	variant := installedAssets(t)
	src := &Sources{ProseDir: filepath.Join(repoRoot, ".prose")}
	if _, err := src.chatProse(); err != nil {
		needInCI(t, "%v", err)
	}
	var sets []Set
	for _, g := range []string{GeneratorChat, GeneratorDocs} {
		s, err := NewSet(g, SplitDev, []int{floorSize})
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, s)
	}
	t0 := time.Now()
	m, err := Run(context.Background(), Config{
		Sets: sets, Vocabs: vocabs, Variants: []Variant{variant},
		Strategies: []string{run.StrategyMegaContext, run.StrategyRAG},
		Jobs:       1, Sources: src,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("assets: %s; %d cells in %s", variant.Assets, len(m.Cells), time.Since(t0).Round(time.Second))
	for _, c := range m.Cells {
		for _, b := range floorBudgets {
			mc, _ := c.Result(run.StrategyMegaContext, b)
			rg, _ := c.Result(run.StrategyRAG, b)
			t.Logf("%-12s %-12s %5d: megacontext %5.1f%%  rag %5.1f%%  (%d questions; window tokens %.0f / %.0f)",
				c.Set, c.Vocab, b, 100*mc.EvidenceRecall, 100*rg.EvidenceRecall, mc.Questions, mc.WindowTokens, rg.WindowTokens)
			if mc.OverBudget+rg.OverBudget != 0 {
				t.Errorf("%s × %s at %d: windows over budget (megacontext %d, rag %d)", c.Set, c.Vocab, b, mc.OverBudget, rg.OverBudget)
			}
			if floor, ok := minDevRecall[floorCell{c.Set, c.Vocab, b}]; ok && mc.EvidenceRecall < floor {
				t.Errorf("%s × %s at %d: megacontext's evidence recall %.1f%% is below its floor of %.0f%%", c.Set, c.Vocab, b, 100*mc.EvidenceRecall, 100*floor)
			}
		}
	}
	viol, err := m.Floor()
	if err != nil {
		t.Fatal(err)
	}
	broken := map[floorCell]bool{}
	for _, v := range viol {
		k := floorCell{v.Set, v.Vocab, v.Budget}
		broken[k] = true
		if why, ok := knownBelowRag[k]; ok {
			t.Logf("rag floor broken, known: %s (%s)", v, why)
			continue
		}
		t.Errorf("rag floor broken: %s", v)
	}
	for k, why := range knownBelowRag {
		if !broken[k] {
			t.Errorf("%s × %s at %d holds the rag floor now: take it off knownBelowRag (%s)", k.set, k.vocab, k.budget, why)
		}
	}
}

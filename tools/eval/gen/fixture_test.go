package gen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// The dev fixture for CI's quick eval, and the options that produced it.
const (
	fixturePath        = "../testdata/small.jsonl"
	fixtureOptionsPath = "../testdata/small.options.json"
	// updateEnv, set to 1, rewrites the fixture from its options file
	// (keeping the seed, sizes and question count, recording the current
	// Go version): MEGACONTEXT_UPDATE_FIXTURES=1 go test ./tools/eval/gen -run TestSmallFixture
	updateEnv = "MEGACONTEXT_UPDATE_FIXTURES"
)

// fixtureOptions is the JSON of small.options.json.
type fixtureOptions struct {
	Seed             int64  `json:"seed"`
	Sizes            []int  `json:"sizes"`
	QuestionsPerType int    `json:"questions_per_type"`
	GoVersion        string `json:"go_version"`
	Corpus           string `json:"corpus"`
}

// TestSmallFixture checks that the committed fixture is a valid dataset
// with every question type and, when the Go version (hence the GOROOT
// prose) equals the recorded one, that regenerating it reproduces it byte
// for byte.
func TestSmallFixture(t *testing.T) {
	raw, err := os.ReadFile(fixtureOptionsPath)
	if err != nil {
		t.Fatal(err)
	}
	var fo fixtureOptions
	if err := json.Unmarshal(raw, &fo); err != nil {
		t.Fatalf("%s: %v", fixtureOptionsPath, err)
	}
	if os.Getenv(updateEnv) == "1" {
		corpus := loadCorpus(t)
		cases, err := Generate(Options{Seed: fo.Seed, Sizes: fo.Sizes, QuestionsPerType: fo.QuestionsPerType, Corpus: corpus})
		if err != nil {
			t.Fatal(err)
		}
		if err := dataset.WriteFile(fixturePath, cases); err != nil {
			t.Fatal(err)
		}
		fo.GoVersion, fo.Corpus = corpus.Version, corpus.Source
		out, err := json.MarshalIndent(fo, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fixtureOptionsPath, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s and %s", filepath.Clean(fixturePath), filepath.Clean(fixtureOptionsPath))
	}

	cases, err := dataset.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != len(fo.Sizes) {
		t.Fatalf("fixture has %d cases, options list %d sizes", len(cases), len(fo.Sizes))
	}
	for i, c := range cases {
		count := map[string]int{}
		for _, q := range c.Questions {
			count[q.Type]++
			for _, e := range q.Evidence {
				if n := c.CountInHistory(e); n != 1 {
					t.Errorf("case %s %s: evidence occurs %d times", c.ID, q.ID, n)
				}
			}
		}
		for _, typ := range dataset.Types() {
			if count[typ] != fo.QuestionsPerType {
				t.Errorf("case %s: %d %s questions, want %d", c.ID, count[typ], typ, fo.QuestionsPerType)
			}
		}
		if got, want := c.HistoryTokens(), fo.Sizes[i]; got < want*9/10 || got > want*11/10 {
			t.Errorf("case %s: %d tokens, want %d ±10%%", c.ID, got, want)
		}
	}

	corpus, err := DefaultCorpus()
	if err != nil {
		t.Skipf("no GOROOT corpus to regenerate the fixture from: %v", err)
	}
	if corpus.Version != fo.GoVersion {
		t.Skipf("fixture was generated from %s prose, this GOROOT is %s: regeneration is only byte-exact for the same Go version (rewrite it with %s=1)",
			fo.GoVersion, corpus.Version, updateEnv)
	}
	regen, err := Generate(Options{Seed: fo.Seed, Sizes: fo.Sizes, QuestionsPerType: fo.QuestionsPerType, Corpus: corpus})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := dataset.Write(&b, regen); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), committed) {
		t.Fatalf("regenerating %s with seed %d, sizes %v, %d questions per type differs from the committed file; "+
			"if the generator changed on purpose, rewrite it with %s=1", fixturePath, fo.Seed, fo.Sizes, fo.QuestionsPerType, updateEnv)
	}
}

package chatgen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// The chat-style fixture for CI's quick eval (tools/eval/run runs it), and
// the options that produced it.
const (
	fixturePath        = "../testdata/chat-small.jsonl"
	fixtureOptionsPath = "../testdata/chat-small.options.json"
	// updateEnv, set to 1, rewrites the fixture from its options file:
	// MEGACONTEXT_UPDATE_FIXTURES=1 go test ./tools/eval/chatgen -run TestChatFixture
	updateEnv = "MEGACONTEXT_UPDATE_FIXTURES"
)

// fixtureOptions is the JSON of chat-small.options.json.
type fixtureOptions struct {
	Seed             int64  `json:"seed"`
	Sizes            []int  `json:"sizes"`
	QuestionsPerType int    `json:"questions_per_type"`
	Prose            string `json:"prose"`
}

// TestChatFixture checks that the committed fixture is a valid dataset with
// every question type, each evidence string once in its history, and that
// regenerating it from the pinned prose reproduces it byte for byte.
func TestChatFixture(t *testing.T) {
	raw, err := os.ReadFile(fixtureOptionsPath)
	if err != nil {
		t.Fatal(err)
	}
	var fo fixtureOptions
	if err := json.Unmarshal(raw, &fo); err != nil {
		t.Fatalf("%s: %v", fixtureOptionsPath, err)
	}
	if os.Getenv(updateEnv) == "1" {
		p := testProse(t)
		cases, err := Generate(Options{Seed: fo.Seed, Sizes: fo.Sizes, QuestionsPerType: fo.QuestionsPerType, Prose: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := dataset.WriteFile(fixturePath, cases); err != nil {
			t.Fatal(err)
		}
		fo.Prose = p.Source
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
	for _, c := range cases {
		count := map[string]int{}
		for _, q := range c.Questions {
			count[q.Type]++
			for _, e := range q.Evidence {
				if n := c.CountInHistory(e); n != 1 {
					t.Errorf("case %s %s: evidence occurs %d times", c.ID, q.ID, n)
				}
			}
		}
		for _, typ := range Types() {
			if count[typ] != fo.QuestionsPerType {
				t.Errorf("case %s: %d %s questions, want %d", c.ID, count[typ], typ, fo.QuestionsPerType)
			}
		}
	}

	p := testProse(t)
	regen, err := Generate(Options{Seed: fo.Seed, Sizes: fo.Sizes, QuestionsPerType: fo.QuestionsPerType, Prose: p})
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

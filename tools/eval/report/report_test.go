package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/tools/eval/run"
)

// fakeMatrix builds a matrix of one set, one vocabulary at 512 and 4096
// and one variant, with the given evidence recall per strategy at each
// budget.
func fakeMatrix(recall map[string][2]float64) *Matrix {
	s := Set{Generator: GeneratorChat, Split: SplitHeldOut, Seeds: []int64{101}, Sizes: []int{32 << 10}}
	m := &Matrix{
		Sets:     []Set{s},
		Vocabs:   []Vocab{{Name: "llama-bpe", Budgets: []int{512, 4096}}},
		Variants: []Variant{{Name: VariantAssets, Assets: "WordNet"}},
	}
	rep := &run.Report{Counter: "llama.cpp:llama-bpe", Cases: []run.CaseInfo{{ID: "c", Questions: 10}}}
	for _, st := range []string{run.StrategyMegaContext, run.StrategyRAG, run.StrategyTruncate} {
		for i, b := range []int{512, 4096} {
			r := recall[st][i]
			rep.Results = append(rep.Results, run.Result{Strategy: st, Budget: b, Questions: 10, EvidenceRecall: r,
				ByType: map[string]run.Group{"paraphrase": {Questions: 10, EvidenceRecall: r}}})
		}
	}
	m.Cells = []Cell{{Set: s.Name(), Vocab: "llama-bpe", Variant: VariantAssets, Report: rep}}
	return m
}

// The floor holds where megacontext ties or beats rag and breaks, with the
// numbers, exactly where it recalls less; a matrix without rag cannot be
// checked.
func TestFloorRule(t *testing.T) {
	m := fakeMatrix(map[string][2]float64{
		run.StrategyMegaContext: {0.5, 0.9},
		run.StrategyRAG:         {0.6, 0.9},
		run.StrategyTruncate:    {0, 0.1},
	})
	viol, err := m.Floor()
	if err != nil {
		t.Fatal(err)
	}
	if len(viol) != 1 || viol[0].Budget != 512 || viol[0].MegaContext != 0.5 || viol[0].RAG != 0.6 {
		t.Fatalf("violations %v, want the one at 512", viol)
	}
	if s := viol[0].String(); !strings.Contains(s, "chat heldout × llama-bpe × assets at 512: megacontext 50.0% < rag 60.0%") {
		t.Errorf("violation reads %q", s)
	}
	m.Cells[0].Report.Results = m.Cells[0].Report.Results[:2] // megacontext only
	if _, err := m.Floor(); err == nil {
		t.Error("a matrix without rag passed the floor")
	}
}

// The Markdown names what ran, gives every strategy's recall in each cell,
// marks the broken floor in recall tables only, and the SVG is well-formed
// with a line per strategy and split.
func TestWriteMarkdownAndSVG(t *testing.T) {
	m := fakeMatrix(map[string][2]float64{
		run.StrategyMegaContext: {0.5, 0.95},
		run.StrategyRAG:         {0.6, 0.8},
		run.StrategyTruncate:    {0, 0.1},
	})
	var md bytes.Buffer
	if err := WriteMarkdown(&md, m, "megacontext eval report -o x"); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"`megacontext eval report -o x`",
		"chat heldout (seeds 101; sizes 32k): 10 questions",
		"| chat heldout | assets | 50.0 / 60.0 / 0.0 ▼ | 95.0 / 80.0 / 10.0 |",
		"| **all** (10) | 50 / 60 / 0 ▼ | 95 / 80 / 10 |",
		"| paraphrase (10) | 50 / 60 / 0 | 95 / 80 / 10 |",
		"megacontext recalls less than rag in 1 of 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, out)
		}
	}
	tokens := out[strings.Index(out, "## Mean window tokens"):strings.Index(out, "## By question type")]
	if strings.Contains(tokens, "▼") {
		t.Errorf("window tokens marked as a floor break:\n%s", tokens)
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, m); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	polylines := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("SVG not well-formed: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 2 { // megacontext and rag on the one held-out set
		t.Errorf("%d lines plotted, want 2", polylines)
	}
}

// Run refuses an empty matrix, and a set's cases come seed by seed, sizes
// in order, with the generator's ids.
func TestRunAndSets(t *testing.T) {
	if _, err := Run(context.Background(), Config{}); err == nil {
		t.Error("an empty matrix ran")
	}
	if _, err := NewSet(GeneratorDocs, "train", nil); err == nil {
		t.Error("an unknown split was accepted")
	}
	s, err := NewSet(GeneratorDocs, SplitHeldOut, []int{2048, 4096})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Describe(); got != "docs heldout (seeds 5; sizes 2k, 4k)" {
		t.Errorf("Describe = %q", got)
	}
	var ids []string
	for c, err := range s.Cases(&Sources{}) {
		if err != nil {
			t.Skipf("the docs generator needs GOROOT's sources: %v", err)
		}
		ids = append(ids, c.ID)
	}
	if strings.Join(ids, ",") != "gen-5-1-2k,gen-5-2-4k" {
		t.Errorf("cases %v", ids)
	}
}

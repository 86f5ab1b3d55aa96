package report

import (
	"fmt"

	"github.com/megacontext/megacontext/tools/eval/run"
)

// Violation is one place where the rag floor does not hold.
type Violation struct {
	Set, Vocab, Variant string
	Budget              int
	// MegaContext and RAG are the two strategies' overall evidence recall.
	MegaContext, RAG float64
	// Questions is how many questions both were asked.
	Questions int
}

func (v Violation) String() string {
	return fmt.Sprintf("%s × %s × %s at %d: megacontext %.1f%% < rag %.1f%% (%d questions)",
		v.Set, v.Vocab, v.Variant, v.Budget, 100*v.MegaContext, 100*v.RAG, v.Questions)
}

// Floor checks the rag floor of issue 9 (item 5) on every cell of the
// matrix: per set, vocabulary, asset variant and budget, megacontext's
// overall evidence recall is at least rag's (rag retrieves with the same
// budget and the same expansions: the variant's thesaurus and word
// vectors). Types are not checked one by one: a type has 3 to 9
// questions a set, where one question moves it by 11 to 33 points.
// It returns the cells where it does not hold, and an error when a cell
// lacks either strategy.
func (m *Matrix) Floor() ([]Violation, error) {
	var out []Violation
	for i := range m.Cells {
		c := &m.Cells[i]
		for _, v := range m.Vocabs {
			if v.Name != c.Vocab {
				continue
			}
			for _, b := range v.Budgets {
				mc, ok1 := c.Result(run.StrategyMegaContext, b)
				rg, ok2 := c.Result(run.StrategyRAG, b)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("report: %s × %s × %s at %d: the floor needs both megacontext and rag", c.Set, c.Vocab, c.Variant, b)
				}
				if mc.EvidenceRecall < rg.EvidenceRecall {
					out = append(out, Violation{Set: c.Set, Vocab: c.Vocab, Variant: c.Variant, Budget: b,
						MegaContext: mc.EvidenceRecall, RAG: rg.EvidenceRecall, Questions: mc.Questions})
				}
			}
		}
	}
	return out, nil
}

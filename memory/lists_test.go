package memory

import (
	"path/filepath"
	"testing"

	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/lens"
)

// A list's items are told by the words that name something: a statement
// that matches a list question through a word told once in the history
// ("Porto", "supplier") outranks one that matches it through words the
// history repeats everywhere ("spent", "whole", "evening"), which GloVe
// puts near almost any question word.
func TestListScoreWeighsRareWords(t *testing.T) {
	v, err := glove.Open(filepath.Join("..", ".glove"))
	if err != nil {
		t.Skipf("skipping: GloVe missing (make glove): %v", err)
	}
	defer v.Close()
	common := map[string]bool{}
	for _, w := range []string{"spent", "whole", "evening", "late", "work", "trip", "making", "bread", "tired", "day", "paperwork"} {
		common[lens.Stem(w)] = true
	}
	df := func(term string) int {
		if common[term] {
			return 400
		}
		return 1
	}
	item := "Landed in Porto late for the supplier meeting."
	others := []string{
		"Spent the whole evening making bread, so tired.",
		"Spent the whole day on the work trip paperwork.",
	}
	for _, q := range []string{"Which cities have I travelled to for my job?", "List every place my work has sent me"} {
		ls := newListScorer(v, q, df, 2000)
		if ls == nil {
			t.Fatalf("%q: no scorer", q)
		}
		got := ls.score(item)
		for _, o := range others {
			if s := ls.score(o); s >= got {
				t.Errorf("%q: %q scores %.3f, the item %q %.3f", q, o, s, item, got)
			}
		}
	}
}

package lens

import (
	"math/rand/v2"
	"testing"
)

// HoldsRare answers, after any Adds, Truncates and Rewrites, what reading
// the block's text against the document frequencies says: whether one of
// its terms is in at most RareDF blocks.
func TestHoldsRareFollowsEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 11))
	words := []string{"garden", "shed", "drill", "kettle", "boiler", "parcel", "train", "lamp", "cousin", "piano", "harbour", "violin"}
	sentence := func() string {
		s := ""
		for range 1 + rng.IntN(5) {
			s += words[rng.IntN(len(words))] + " "
		}
		return s
	}
	want := func(x *Index, text string) bool {
		for _, term := range Terms(text) {
			if x.DF(term) <= RareDF {
				return true
			}
		}
		return false
	}
	for trial := range 300 {
		x := NewIndex()
		var texts []string
		for range 1 + rng.IntN(25) {
			texts = append(texts, sentence())
			x.Add(texts[len(texts)-1])
		}
		for range rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				n := rng.IntN(len(texts) + 1)
				x.Truncate(n, func(b int) string { return texts[b] })
				texts = texts[:n]
			case 1:
				if len(texts) > 0 {
					b := rng.IntN(len(texts))
					now := sentence()
					if rng.IntN(4) == 0 {
						now = ""
					}
					x.Rewrite(b, texts[b], now)
					texts[b] = now
				}
			default:
				texts = append(texts, sentence())
				x.Add(texts[len(texts)-1])
			}
		}
		for b, s := range texts {
			if got := x.HoldsRare(b); got != want(x, s) {
				t.Fatalf("trial %d block %d %q: HoldsRare %v, the text says %v", trial, b, s, got, !got)
			}
		}
		if x.HoldsRare(len(texts)) || x.HoldsRare(-1) {
			t.Fatalf("trial %d: a block out of range holds a rare term", trial)
		}
	}
}

package lens

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// A block matches only through recurring text when every term the
// question matches lies in shingles that recur; a fact told once next to
// the same small talk does not.
func TestOnlyRecurring(t *testing.T) {
	x := NewIndex()
	small := "The neighbours are having building work done and the drilling starts early."
	var texts []string
	for i := range 5 {
		texts = append(texts, fmt.Sprintf("%s Also note %d.", small, i))
	}
	texts = append(texts,
		small+" Unrelated: my new workbench arrived from Ellwood Timber today.",
		"Quiet day, read a book about lighthouses.",
	)
	for _, s := range texts {
		x.Add(s)
	}
	match := func(words ...string) func(uint32) bool {
		set := map[uint32]bool{}
		for _, w := range words {
			set[TermHash(Stem(w))] = true
		}
		return func(h uint32) bool { return set[h] }
	}
	cases := []struct {
		block int
		terms []string
		want  bool
	}{
		{0, []string{"work", "drilling"}, true},   // only the small talk matches
		{5, []string{"work", "drilling"}, true},   // the fact is there but unmatched
		{5, []string{"workbench", "work"}, false}, // the fact matches
		{6, []string{"lighthouses"}, false},       // nothing recurs
		{0, []string{"lighthouses"}, false},       // nothing matches
	}
	for _, c := range cases {
		if got := x.OnlyRecurring(c.block, match(c.terms...)); got != c.want {
			t.Errorf("block %d matching %v: OnlyRecurring = %v, want %v", c.block, c.terms, got, c.want)
		}
	}
}

// Shingle counts and memory are those of the blocks the index holds,
// whatever Add, Truncate and Rewrite did before.
func TestShingleCountsFollowEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	words := []string{"garden", "shed", "drill", "kettle", "boiler", "parcel", "train", "lamp", "cousin", "piano"}
	sentence := func() string {
		s := ""
		for range 3 + rng.IntN(6) {
			s += words[rng.IntN(len(words))] + " "
		}
		return s
	}
	for trial := range 50 {
		x := NewIndex()
		var texts []string
		for range 1 + rng.IntN(30) {
			texts = append(texts, sentence())
			x.Add(texts[len(texts)-1])
		}
		if n := rng.IntN(len(texts) + 1); rng.IntN(2) == 0 {
			x.Truncate(n, func(b int) string { return texts[b] })
			texts = texts[:n]
		}
		if len(texts) > 0 {
			b := rng.IntN(len(texts))
			now := sentence()
			x.Rewrite(b, texts[b], now)
			texts[b] = now
		}
		fresh := NewIndex()
		for _, s := range texts {
			fresh.Add(s)
		}
		if !maps.Equal(x.shingleN, fresh.shingleN) {
			t.Fatalf("trial %d: shingle counts %v, want those of a fresh index %v", trial, x.shingleN, fresh.shingleN)
		}
		if x.Bytes() != fresh.Bytes() {
			t.Fatalf("trial %d: Bytes %d, want a fresh index's %d", trial, x.Bytes(), fresh.Bytes())
		}
	}
}

// A truncated block (a dry run taken back) leaves no sentence vector and
// no name behind: the next block added gets its own place.
func TestTruncateDropsSentenceVectorsAndNames(t *testing.T) {
	v := tinyVectors(t, []string{"boat", "ship", "bread", "pruned"}, [][]float64{{1, 0.1, 0, 0}, {0.9, 0.2, 0, 0}, {0, 0, 1, 0.1}, {0, 0.1, 0, 1}})
	x := NewIndex()
	x.UseVectors(v)
	x.Add("fresh bread today")
	x.Add("we sailed the boat with Damien")
	x.Truncate(1, func(int) string { return "we sailed the boat with Damien" })
	if x.Name("damien") {
		t.Error("damien is still a name after the only block naming it was taken back")
	}
	x.Add("more bread")
	if sim := x.Semantic().Similar("ship", 2, 2, 0.5, nil); len(sim) != 0 {
		t.Errorf("block 1 (bread) is similar to ship: the taken-back boat block's vector stayed: %v", sim)
	}
}

// MayHold is false only for a block that holds none of the terms asked
// for: a block with one of them, or too few terms to be hashed, may.
func TestMayHold(t *testing.T) {
	x := NewIndex()
	x.Add("The projector in the meeting room is a BenQ now.") // 0
	x.Add("Ok.")                                              // 1: one term, no hashes
	x.Add("Lunch was pasta with the team again today.")       // 2
	asks := func(terms ...string) func(uint32) bool {
		hs := map[uint32]bool{}
		for _, t := range terms {
			hs[TermHash(t)] = true
		}
		return func(h uint32) bool { return hs[h] }
	}
	cases := []struct {
		b     int
		terms []string
		want  bool
	}{
		{0, []string{"projector"}, true},
		{0, []string{"benq", "pasta"}, true},
		{0, []string{"pasta"}, false},
		{2, []string{"pasta"}, true},
		{2, []string{"projector", "room"}, false},
		{1, []string{"pasta"}, true}, // not hashed: may hold anything
		{5, []string{"pasta"}, true}, // not indexed
	}
	for _, c := range cases {
		if got := x.MayHold(c.b, asks(c.terms...)); got != c.want {
			t.Errorf("MayHold(%d, %v) = %v, want %v", c.b, c.terms, got, c.want)
		}
	}
}

// onlyRecurringFresh is OnlyRecurring as it was before it kept what it
// learned: every matched term checked against the shingle counts.
func onlyRecurringFresh(x *Index, b int, match func(uint32) bool) bool {
	hs := x.blockTerms[b]
	n := len(hs) - shingleLen + 1
	if n <= 0 {
		return false
	}
	found := false
	for i, h := range hs {
		if !match(h) {
			continue
		}
		found = true
		for j := max(0, i-shingleLen+1); j <= min(i, n-1); j++ {
			if x.shingleN[shingle(hs, j)] < minRecur {
				return false
			}
		}
	}
	return found
}

// What OnlyRecurring keeps between calls never changes its answer: after
// any Adds (counts rise), Truncates and Rewrites (counts fall below
// minRecur again) between the questions, it answers as checking every
// count afresh does.
func TestOnlyRecurringRemembersSoundly(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 21))
	words := []string{"garden", "shed", "drill", "kettle", "boiler", "parcel"}
	small := []string{"the neighbours drilling again", "kettle boiler garden shed", "parcel for the garden"}
	sentence := func() string {
		if rng.IntN(2) == 0 {
			return small[rng.IntN(len(small))] + " " + words[rng.IntN(len(words))]
		}
		s := ""
		for range 3 + rng.IntN(5) {
			s += words[rng.IntN(len(words))] + " "
		}
		return s
	}
	for trial := range 100 {
		x := NewIndex()
		var texts []string
		for range 2 + rng.IntN(10) {
			texts = append(texts, sentence())
			x.Add(texts[len(texts)-1])
		}
		for range 30 {
			switch rng.IntN(4) {
			case 0:
				texts = append(texts, sentence())
				x.Add(texts[len(texts)-1])
			case 1:
				n := 1 + rng.IntN(len(texts))
				x.Truncate(n, func(b int) string { return texts[b] })
				texts = texts[:n]
			case 2:
				b := rng.IntN(len(texts))
				now := sentence()
				x.Rewrite(b, texts[b], now)
				texts[b] = now
			}
			set := map[uint32]bool{}
			for _, w := range words[:1+rng.IntN(len(words))] {
				set[TermHash(Stem(w))] = true
			}
			match := func(h uint32) bool { return set[h] }
			for b := range texts {
				if got, want := x.OnlyRecurring(b, match), onlyRecurringFresh(x, b, match); got != want {
					t.Fatalf("trial %d block %d %q: OnlyRecurring %v, counted afresh %v", trial, b, texts[b], got, want)
				}
			}
		}
	}
}

// A block rewritten (retention pruned it) is checked anew: what was
// learned of its old terms says nothing of its new ones, even when no
// count fell below minRecur.
func TestOnlyRecurringForgetsRewrittenBlock(t *testing.T) {
	x := NewIndex()
	small := "kettle boiler garden shed"
	for range 5 {
		x.Add(small)
	}
	kettle := func(h uint32) bool { return h == TermHash(Stem("kettle")) }
	if !x.OnlyRecurring(0, kettle) {
		t.Fatal("small talk told five times does not recur")
	}
	x.Rewrite(0, small, "kettle parcel drill lamp")
	if x.OnlyRecurring(0, kettle) {
		t.Error("the rewritten block still matches only through small talk")
	}
}

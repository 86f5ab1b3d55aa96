package lens

import "testing"

// Cover ranks blocks by how near their words come to the question's,
// counts weak matches, leaves out what keep rejects and small talk that
// recurs.
func TestCover(t *testing.T) {
	v := tinyVectors(t, []string{"vehicle", "car", "dealer", "bread", "noise"},
		[][]float64{{1, 0, 0, 0}, {0.9, 0.3, 0, 0}, {0.5, 0, 0.8, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}})
	x := NewIndex()
	x.UseVectors(v)
	x.Add("bought a car from the dealer") // 0: near and weak
	x.Add("fresh bread today")            // 1: far
	x.Add("the dealer called back")       // 2: weak only
	x.Add("borrowed a car for the trip")  // 3: rejected by keep
	for range 3 {
		x.Add("the car is making that noise again") // 4-6: recurring small talk
	}
	got := x.Cover("What vehicle do we own?", 0.3, x.Len(), func(b int) bool { return b != 3 }, func(int) bool { return false })
	if got[0] <= got[2] || got[2] <= 0 {
		t.Errorf("the block near the question (%.3f) should outrank the weak match (%.3f), which counts", got[0], got[2])
	}
	for _, b := range []int{1, 3, 4, 5, 6} {
		if _, ok := got[b]; ok {
			t.Errorf("block %d scored %.3f: far, rejected or recurring", b, got[b])
		}
	}
	if n := len(x.Cover("What vehicle?", 0.3, 0, func(int) bool { return true }, func(int) bool { return false })); n > 0 {
		t.Error("limit 0 scores blocks")
	}
}

// Kin finds a seed's siblings by the values they name: the nearer a
// candidate's rare word to a seed's, the more it scores, weighted by the
// seed; a seed does not count for itself, and words rare rejects (small
// talk) bring nothing.
func TestKin(t *testing.T) {
	v := tinyVectors(t, []string{"golf", "niro", "tesla", "soup", "weather", "lunch"},
		[][]float64{{1, 0, 0, 0}, {0.9, 0.4, 0, 0}, {0.8, 0.6, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {0, 0.2, 0.9, 0.3}})
	x := NewIndex()
	x.UseVectors(v)
	texts := []string{
		"sold the golf at last",     // 0: the seed
		"we lease a niro now",       // 1: near the seed's value
		"a tesla maybe next year",   // 2: farther
		"made soup for lunch",       // 3: far
		"the weather again",         // 4: near only by a word rare rejects
		"golf clubs in the attic",   // 5: the seed's very word
		"weather weather and lunch", // 6: nothing rare
	}
	for _, s := range texts {
		x.Add(s)
	}
	rejected := map[string]bool{Stem("weather"): true}
	text := func(b int) string { return texts[b] }
	got := x.Kin(map[int]float64{0: 1}, []int{0, 1, 2, 3, 4, 5, 6}, text, func(t string) bool { return !rejected[t] }, 0.45)
	if _, ok := got[0]; ok {
		t.Errorf("the seed counts for itself: %.3f", got[0])
	}
	if !(got[5] > got[1] && got[1] > got[2] && got[2] > 0) {
		t.Errorf("kin should follow the values' similarity to the seed's: same word %.3f > niro %.3f > tesla %.3f > 0", got[5], got[1], got[2])
	}
	for _, b := range []int{3, 4, 6} {
		if s, ok := got[b]; ok {
			t.Errorf("block %d (%q) scored %.3f", b, text(b), s)
		}
	}
	half := x.Kin(map[int]float64{0: 0.5}, []int{1}, text, func(string) bool { return true }, 0.45)
	if d := half[1] - got[1]/2; d > 1e-6 || d < -1e-6 {
		t.Errorf("a seed of weight 0.5 gives %.4f, want half of %.4f", half[1], got[1])
	}
	if x.Kin(nil, []int{1}, text, func(string) bool { return true }, 0.45) != nil {
		t.Error("no seeds, yet kin")
	}
}

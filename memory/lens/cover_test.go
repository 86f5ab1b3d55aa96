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

package lens

import "testing"

// EndsOpen tells a block cut inside a sentence from one that ends it, for
// the text each block holds after Truncate and Rewrite.
func TestEndsOpen(t *testing.T) {
	for _, tc := range []struct {
		text string
		open bool
	}{
		{"we drove to the coast and", true},
		{"we drove to the coast.", false},
		{"did we?  ", false},
		{"wow!\n", false},
		{"“a quote”", true},
		{"", true},
		{"日本", true},
	} {
		if got := endsOpen(tc.text); got != tc.open {
			t.Errorf("endsOpen(%q) = %v, want %v", tc.text, got, tc.open)
		}
	}
	x := NewIndex()
	for _, s := range []string{"one and", "two.", "three and", "four"} {
		x.Add(s)
	}
	x.Truncate(3, func(b int) string { return []string{"one and", "two.", "three and", "four"}[b] })
	x.Rewrite(0, "one and", "[pruned].")
	x.Add("five?")
	for b, want := range []bool{false, false, true, false} {
		if got := x.EndsOpen(b); got != want {
			t.Errorf("block %d: EndsOpen %v, want %v", b, got, want)
		}
	}
	if x.EndsOpen(4) || x.EndsOpen(-1) {
		t.Error("a block out of range ends open")
	}
}

package memory

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/lens"
)

// scoreBlocks reads a block's text for ownership only when the block's
// index terms hold an owned term (lens.Index.MayHold): every word
// ownership looks at is one of the text's index terms, whatever the case,
// punctuation, joiners or script, so that a block without any owned term
// always weighs 1.
func TestOwnershipReadsOnlyIndexTerms(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"my", "our", "My", "OUR", "car", "Car's", "cars", "parents'", "Tomas's", "her", "bike",
		"İstanbul", "STRASSE", "ẞtraße", "Kelvin", "\u212aelvin", "naïve", "co-op", "B-52", "x_y", "a.b", "e.g.",
		"it’s", "we're", "I'm", "’s", "-", "_", ".", ",", "!", "?", "\"", "'", "(", ")", "\u00a0", "\t", "\n", " ", " ",
		"\u0130", "ǅ", "Σ", "ς", "日本", "\xff", "42", "4th", "naive", "wedding", "anniversary"}
	for trial := range 3000 {
		var sb strings.Builder
		for range 1 + r.IntN(14) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
			if r.IntN(3) > 0 {
				sb.WriteByte(' ')
			}
		}
		text := sb.String()
		terms := map[string]bool{}
		for _, t := range lens.Terms(text) {
			terms[t] = true
		}
		// Every term a word of the text can lead with, owned by turns.
		for _, w := range strings.Fields(strings.ToLower(text)) {
			ts := lens.Terms(w)
			if len(ts) == 0 {
				continue
			}
			if !terms[ts[0]] {
				t.Fatalf("trial %d: %q: word %q leads with %q, not an index term of the text %v", trial, text, w, ts[0], terms)
			}
		}
		// An owned set the text's terms miss weighs it 1.
		owned := map[string]bool{}
		for _, p := range pieces[:12] {
			for _, t := range lens.Terms(p) {
				if !terms[t] {
					owned[t] = true
				}
			}
		}
		if len(owned) > 0 {
			if got := ownership(text, owned); got != 1 {
				t.Fatalf("trial %d: %q holds none of %v, weighs %v", trial, text, owned, got)
			}
		}
	}
}

// firstTerm tells ownership what lens.Terms would: the first term and
// whether there is one, or more.
func TestFirstTermAgreesWithTerms(t *testing.T) {
	for _, w := range []string{"", "my", "the", "cat's", "zx-4471-qk", "a-b", "well-known", "1.2.3", "café", "dogs,", "'s", "x", "--"} {
		ts := lens.Terms(w)
		first, n := firstTerm(w)
		if n != min(len(ts), 2) || (n > 0 && first != ts[0]) {
			t.Errorf("firstTerm(%q) = %q, %d; Terms %q", w, first, n, ts)
		}
	}
}

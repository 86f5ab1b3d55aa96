package memory

import (
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/tokens"
)

func TestSplitBlocksProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		text := rapid.StringOf(rapid.SampledFrom([]rune("ab cd. ef\nZX-4471 é日🦙!?  "))).Draw(t, "text")
		k := rapid.IntRange(4, 64).Draw(t, "k")
		pieces := splitBlocks(text, k)
		if strings.Join(pieces, "") != text {
			t.Fatalf("pieces do not rebuild the text")
		}
		for _, p := range pieces {
			if p == "" {
				t.Fatalf("empty piece")
			}
			// A piece over k is a single word (or rune) that could not be cut.
			if (tokens.Estimate{}).Count(p) > k && len(strings.Fields(p)) > 1 {
				t.Fatalf("piece %q over %d tokens", p, k)
			}
		}
	})
}

func TestSplitKeepsSentenceTogether(t *testing.T) {
	text := "We walked along the river and talked about the garden for a long while that day. By the way, my locker code is ZX-4471-QK and my cat is Biscuit."
	for _, p := range splitBlocks(text, 32) {
		if strings.Contains(p, "locker") && !strings.Contains(p, "ZX-4471-QK") {
			t.Fatalf("fact split from its value: %q", splitBlocks(text, 32))
		}
	}
}

// A short opening sentence becomes a block of its own rather than leave
// the statement after it cut in two.
func TestSplitShortSentenceLeavesNextWhole(t *testing.T) {
	const fact = "I also picked up a leather journal as a present for Arjun Eriksen."
	text := "Unrelated, but worth remembering. " + fact + " Today I had lunch at Hanami Kitchen. I'm reading about the runtime package."
	pieces := splitBlocks(text, 32)
	for _, p := range pieces {
		if strings.Contains(p, "leather") {
			if !strings.Contains(p, fact) {
				t.Fatalf("statement cut in two: %q", pieces)
			}
			return
		}
	}
	t.Fatalf("no piece holds the statement: %q", pieces)
}

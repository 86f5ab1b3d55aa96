package memory

import (
	"regexp"
	"strings"

	"github.com/megacontext/megacontext/memory/lens"
)

// This file holds whose thing a question asks about ("my", "our").

// Whose thing a question asks about. "When is our wedding anniversary?"
// asks about ours, not about "Tomas's wedding anniversary" or "my
// parents' wedding anniversary" that the history also holds: a block that
// says the question's thing is someone else's weighs less, one that says
// it is mine or ours more.

// ownedRE finds what a question says is the asker's own.
var ownedRE = regexp.MustCompile(`(?i)\b(?:my|our)\s+((?:[a-z'’-]+\s+){0,2}[a-z'’-]+)`)

// ownedTerms returns the terms of what a question says is the asker's.
func ownedTerms(q string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ownedRE.FindAllStringSubmatch(q, -1) {
		for _, t := range lens.Terms(m[1]) {
			out[t] = true
		}
	}
	return out
}

// firstTerm returns the first of w's index terms (lens.Terms) and how
// many it has, counted up to 2: all ownership asks of a word, without
// listing its terms.
func firstTerm(w string) (first string, n int) {
	for t := range lens.TermSeq(w) {
		if n == 0 {
			first = t
		}
		if n++; n == 2 {
			break
		}
	}
	return first, n
}

// Weights of a block by whose the question's thing is in it.
const (
	ownedMine   = 1.2
	ownedOthers = 0.6
)

// ownership returns the weight of a block by whose the question's owned
// things are in it: ownedMine when one follows "my" or "our", ownedOthers
// when they only follow someone else's possessive ("Tomas's", "parents'",
// "her"), 1 otherwise.
func ownership(text string, owned map[string]bool) float64 {
	words := strings.Fields(strings.ToLower(text))
	mine, others := false, false
	for i, w := range words {
		if t, n := firstTerm(w); n == 0 || !owned[t] {
			continue
		}
		// The word before the owned phrase: skip the phrase's own words.
		j := i - 1
		for j >= 0 && j >= i-2 {
			if p, n := firstTerm(words[j]); n == 1 && owned[p] {
				j--
				continue
			}
			break
		}
		if j < 0 {
			continue
		}
		p := strings.TrimRight(words[j], ",.;:!?\"")
		switch {
		case p == "my" || p == "our" || p == "i'm" || p == "we're":
			mine = true
		case strings.HasSuffix(p, "'s") || strings.HasSuffix(p, "’s") || strings.HasSuffix(p, "s'") || p == "his" || p == "her" || p == "their" || p == "your":
			others = true
		}
	}
	switch {
	case mine:
		return ownedMine
	case others:
		return ownedOthers
	}
	return 1
}

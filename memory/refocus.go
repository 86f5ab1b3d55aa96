package memory

import (
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/tree"
)

// This file holds the refocus hop: what a first pass revealed (a name,
// a rare word) becomes the query of the next, for multi-hop questions.

// refocusTerms extracts new query terms from the best revealed blocks
// (they arrive most relevant first): the rare terms a second hop can be
// found by, such as the name the first hop revealed. query is the round's
// query; have holds every term already searched for (the new ones are
// added to it). from are the blocks the terms were taken from: this hop,
// which the next one is not.
func (e *Engine) refocusTerms(c *mctx, query []lens.Term, have map[string]bool, revealed []*tree.Node) (out []lens.Term, from []int) {
	weight := map[string]float64{}
	for _, t := range query {
		have[t.Text] = true
		weight[t.Text] = max(weight[t.Text], t.Weight)
	}
	// The first hop is the block that covers the question's most specific
	// terms, not the one that repeats a common one most (coverage).
	coverage := func(b *tree.Node) float64 { return c.coverage(b, weight) }
	// The most relevant few are enough to find it among, and tokenizing
	// every revealed block of a vague question would cost more than the
	// rest of the assembly.
	ranked := slices.Clone(revealed[:min(len(revealed), refocusCandidates)])
	cov := make(map[*tree.Node]float64, len(ranked))
	for _, b := range ranked {
		cov[b] = coverage(b)
	}
	sort.SliceStable(ranked, func(i, j int) bool { return cov[ranked[i]] > cov[ranked[j]] })
	// next lists the new terms of block b's sentences that hold the
	// round's terms (a block often goes on with small talk the next hop has
	// nothing to do with), and whether one is a name.
	top := c.index.IDF("")
	next := func(b *tree.Node) (terms []lens.Term, named bool) {
		seen := map[string]bool{}
		// A sentence cut at the block's end goes on in the message's next
		// block: its rest counts too.
		text := b.Text
		if nb := b.Index + 1; b.Level == 0 && nb < c.tree.Len() && c.tree.Block(nb).Msg == b.Msg && !strings.ContainsAny(lastRune(strings.TrimSpace(b.Text)), ".!?") {
			if rest := gist.SplitSentences(c.tree.Block(nb).Text); len(rest) > 0 {
				text += " " + rest[0]
			}
		}
		for _, sent := range gist.SplitSentences(text) {
			ts := lens.Terms(sent)
			if !slices.ContainsFunc(ts, func(t string) bool { return weight[t] > 0 }) {
				continue
			}
			for _, t := range ts {
				if have[t] || seen[t] || c.index.IDF(t) <= refocusMinIDF {
					continue
				}
				seen[t] = true
				w := refocusWeight
				if c.index.Capitalized(t) && c.index.IDF(t) >= refocusNameIDF*top {
					w, named = refocusNameWeight, true // rare, never in lower case: a name
				}
				terms = append(terms, lens.Term{Text: t, Weight: w})
			}
		}
		return terms, named
	}
	// A hop hinges on a name: the best covering blocks that reveal a new
	// name lead the next round, by their names alone; only when none
	// does, the best covering blocks whatever they reveal.
	type source struct {
		b     *tree.Node
		terms []lens.Term
	}
	var named, any []source
	for _, b := range ranked {
		if cov[b] == 0 {
			break // a block with no question term is only a hit's neighbour
		}
		if cov[b] < refocusSecond*cov[ranked[0]] {
			break // a far weaker match leads nowhere the best does not
		}
		terms, isNamed := next(b)
		if isNamed && len(named) < refocusBlocks {
			named = append(named, source{b, terms})
		}
		if len(any) < refocusBlocks {
			any = append(any, source{b, terms})
		}
	}
	byName := len(named) > 0
	if !byName {
		named = any
	}
	for i, src := range named {
		from = append(from, src.b.Index)
		for _, t := range src.terms {
			// Where a source reveals a name, the hop is that name: the
			// other rare words of its sentence ("Elodie's kid Bella turned
			// twelve last week") lead to the sentences like it about
			// other people ("Kit's kid Rory turned twelve last week"),
			// which took a small window's budget from the name's own.
			// Those of a weaker source would lead astray too.
			if (i > 0 || byName) && t.Weight < refocusNameWeight {
				continue
			}
			if !have[t.Text] {
				have[t.Text] = true
				out = append(out, t)
			}
		}
	}
	return out, from
}

// lastRune returns the last character of s ("" for "").
func lastRune(s string) string {
	_, n := utf8.DecodeLastRuneInString(s)
	return s[len(s)-n:]
}

// Refocus parameters, tuned with `megacontext eval` (see README).
const (
	refocusBlocks     = 2
	refocusCandidates = 16
	refocusMinIDF     = 4
	refocusWeight     = 0.3
	refocusNameWeight = 0.8
	// refocusSecond is the least coverage of a block that leads a hop, as
	// a share of the best covering block's.
	refocusSecond = 0.5
	// refocusNameIDF is the least IDF of a name, as a share of the
	// highest: a capitalized word as common as "Oh" or "PS" names no one.
	refocusNameIDF = 0.6
)

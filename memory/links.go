package memory

import (
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/lens"
)

// Word links. The reverse dictionary and the definitions (HistoryExpander,
// Definer) find the nouns WordNet has; a history names things in words it
// lacks too ("my physio", "our lawnmower", "the mandoline"), and a
// question that describes such a thing found nothing. Each history word
// WordNet lacks is linked, once, to the nouns it stands for (WordLinker:
// a compound's head, the nearest nouns by GloVe); the thesaurus then sees
// those nouns as held, and what it proposes for them reaches the
// history's word.

// WordLinker is an Expander that links a word it lacks to the nouns it
// has, as lens terms weighted by how surely (thesaurus.LinkWord).
type WordLinker interface {
	LinkWord(word string, v *glove.Vectors) []lens.Term
}

// wordLinks are a context's history words linked to the nouns they stand
// for: to maps a noun's lens term to the history's terms linked to it.
type wordLinks struct {
	// upTo is how many of the semantic channel's terms were read.
	upTo int
	to   map[string][]lens.Term
}

// linksOf returns c's word links, brought up to date with the history's
// new terms; nil without a linker or vectors.
func (e *Engine) linksOf(c *mctx) *wordLinks {
	l, ok := e.opts.Expander.(WordLinker)
	sem := c.index.Semantic()
	if !ok || sem == nil {
		return nil
	}
	if c.links == nil {
		c.links = &wordLinks{to: map[string][]lens.Term{}}
	}
	wl := c.links
	v := sem.Vectors()
	wl.upTo = sem.Words(wl.upTo, func(term, word string) {
		vv := v
		if word == "" {
			// No vector ("smartwatch"): a compound may still name its
			// kind, in the term's letters.
			word, vv = term, nil
		}
		for _, n := range l.LinkWord(word, vv) {
			wl.to[n.Text] = append(wl.to[n.Text], lens.Term{Text: term, Weight: n.Weight})
		}
	})
	return wl
}

// has returns a has function for the thesaurus: whether the history holds
// a term, or a word linked to it.
func (wl *wordLinks) has(c *mctx) func(string) bool {
	return func(t string) bool {
		return c.index.DF(t) > 0 || (wl != nil && len(wl.to[t]) > 0)
	}
}

// resolve returns ts with each term the history does not hold replaced
// by the history's words linked to it, each weighted by the term's
// weight times how surely it is linked.
func (wl *wordLinks) resolve(c *mctx, ts []lens.Term) []lens.Term {
	if wl == nil || len(wl.to) == 0 {
		return ts
	}
	out := make([]lens.Term, 0, len(ts))
	var linked []lens.Term
	for _, t := range ts {
		if c.index.DF(t.Text) > 0 {
			out = append(out, t)
		}
		for _, x := range wl.to[t.Text] {
			linked = append(linked, lens.Term{Text: x.Text, Weight: t.Weight * x.Weight})
		}
	}
	if len(linked) == 0 {
		return out
	}
	return lens.Merge(out, linked)
}

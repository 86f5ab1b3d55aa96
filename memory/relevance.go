package memory

import (
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/tree"
)

// lastUserText returns the text of the last user message, or "".
func lastUserText(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Text
		}
	}
	return ""
}

// queryTail is how many of the request's last messages the lens query
// reads besides the last user message.
const queryTail = 4

// query builds the lens query: the latest user message, plus the rest of
// the tail at a lower weight.
func (e *Engine) query(c *mctx, r Request, tailFrom int) []lens.Term {
	var lists [][]lens.Term
	last := -1
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			last = i
			break
		}
	}
	if last >= 0 {
		lists = append(lists, lens.Query(r.Messages[last].Text, 1))
		if e.opts.Expander != nil {
			lists = append(lists, e.expand(c, r.Messages[last].Text))
		}
	}
	for i := len(r.Messages) - 1; i >= tailFrom && i >= len(r.Messages)-queryTail; i-- {
		if i != last && !isLeadingRole(r.Messages[i].Role) {
			lists = append(lists, lens.Query(r.Messages[i].Text, 0.25))
		}
	}
	return lens.Merge(lists...)
}

// focusOnDays favours what was said on the days a question names ("on
// December 12, 2024"): blocks of those days that match the question weigh
// three times as much, and the rest of those days' blocks get a little
// relevance of their own.
func (e *Engine) focusOnDays(c *mctx, question string, scores map[int]float64, inTail func(int) bool) {
	days := questionDays(question, e.opts.Now())
	if len(days) == 0 {
		return
	}
	best := 0.0
	for _, s := range scores {
		best = max(best, s)
	}
	if best == 0 {
		best = 1
	}
	for _, d := range days {
		first, last := c.dayBlocks(d)
		for b := first; b < last; b++ {
			if inTail(b) {
				continue
			}
			if s, ok := scores[b]; ok && s > 0 {
				scores[b] = 3 * s
			} else {
				scores[b] = 0.1 * best
			}
		}
	}
}

// expand adds the thesaurus's related terms. When a word of the question
// never occurs in the history, the related terms stand in for it rather
// than merely widen the search: they get full weight.
func (e *Engine) expand(c *mctx, question string) []lens.Term {
	extra := e.opts.Expander.Expand(question)
	missing := false
	for _, t := range lens.Query(question, 1) {
		if c.index.DF(t.Text) == 0 {
			missing = true
			break
		}
	}
	if missing {
		for i := range extra {
			extra[i].Weight = min(1, 2*extra[i].Weight)
		}
	}
	return extra
}

// scoreBlocks scores blocks outside the tail: BM25, a mild recency boost
// (newer statements win ties, so updates outrank what they replace) and a
// share for neighbours in the same message.
func (e *Engine) scoreBlocks(c *mctx, q []lens.Term, inTail func(int) bool) map[int]float64 {
	raw := c.index.Score(q, c.tree.Len(), 0.2)
	n := float64(c.tree.Len())
	out := make(map[int]float64, len(raw)*3)
	for b, s := range raw {
		if inTail(b) {
			continue
		}
		s *= 1 + 0.15*float64(b+1)/n
		out[b] += s
		// Neighbours in the same message share the score: the block after a
		// hit often holds the value its sentence was leading up to.
		blk := c.tree.Block(b)
		for _, nb := range [2]struct {
			b     int
			share float64
		}{{b - 1, 0.3}, {b + 1, 0.6}} {
			if nb.b < 0 || nb.b >= c.tree.Len() || inTail(nb.b) || c.tree.Block(nb.b).Msg != blk.Msg {
				continue
			}
			out[nb.b] += nb.share * s
		}
	}
	return out
}

// refocusTerms extracts new query terms from the best revealed blocks
// (they arrive most relevant first): the rare terms a second hop can be
// found by, such as the name the first hop revealed.
func (e *Engine) refocusTerms(c *mctx, query []lens.Term, revealed []*tree.Node) []lens.Term {
	have := map[string]bool{}
	weight := map[string]float64{}
	for _, t := range query {
		have[t.Text] = true
		weight[t.Text] = max(weight[t.Text], t.Weight)
	}
	// The first hop is the block that covers the question's most specific
	// terms, not the one that repeats a common one most: rank by the
	// weighted IDF of the distinct question terms each block holds.
	coverage := func(b *tree.Node) float64 {
		sum := 0.0
		seen := map[string]bool{}
		for _, t := range lens.Terms(b.Text) {
			if w := weight[t]; w > 0 && !seen[t] {
				seen[t] = true
				sum += w * c.index.IDF(t)
			}
		}
		return sum
	}
	// The most relevant few are enough to find it among, and tokenizing
	// every revealed block of a vague question would cost more than the
	// rest of the assembly.
	ranked := slices.Clone(revealed[:min(len(revealed), refocusCandidates)])
	cov := make(map[*tree.Node]float64, len(ranked))
	for _, b := range ranked {
		cov[b] = coverage(b)
	}
	sort.SliceStable(ranked, func(i, j int) bool { return cov[ranked[i]] > cov[ranked[j]] })
	var out []lens.Term
	for i, b := range ranked {
		if i == refocusBlocks || cov[b] == 0 {
			break // a block with no question term is only a hit's neighbour
		}
		names := entityTerms(b.Text)
		for _, t := range lens.Terms(b.Text) {
			if have[t] || c.index.IDF(t) <= refocusMinIDF {
				continue
			}
			have[t] = true
			// A hop hinges on a name: names the first hop revealed lead the
			// second round; other rare words only help.
			w := refocusWeight
			if names[t] {
				w = refocusNameWeight
			}
			out = append(out, lens.Term{Text: t, Weight: w})
		}
	}
	return out
}

// entityTerms returns the index terms of capitalized words that do not
// start a sentence: names, mostly.
func entityTerms(text string) map[string]bool {
	out := map[string]bool{}
	start := true
	for _, w := range strings.Fields(text) {
		core := strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if core != "" && !start {
			if r, _ := utf8.DecodeRuneInString(core); unicode.IsUpper(r) {
				for _, t := range lens.Terms(core) {
					out[t] = true
				}
			}
		}
		start = strings.HasSuffix(w, ".") || strings.HasSuffix(w, "!") || strings.HasSuffix(w, "?") || strings.HasSuffix(w, ":")
	}
	return out
}

// Refocus parameters, tuned with `megacontext eval` (see README).
const (
	refocusBlocks     = 2
	refocusCandidates = 16
	refocusMinIDF     = 4
	refocusWeight     = 0.3
	refocusNameWeight = 0.8
)

package memory

import (
	"cmp"
	"regexp"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/memory/lens"
)

// Gathering what the user said over time (issue 9, item 4 and the
// multi-evidence questions). "What car do we drive these days?" asks for
// the newest of several statements about one slot, and "which cities have
// I been to for work?" for a list told across sessions; people tell both
// in words of their own ("traded in the Golf, we've got a Leaf now",
// "back from Ghent, the conference was fine"), which share no word with
// the question. Such a question is recognized by closed-class words
// alone (temporal adverbs: currentValue; quantifiers, the first-person
// present perfect: asksList), and then:
//   - the assistant's text weighs less than for other questions
//     (gatherAssistantWeight): the answer is in the user's own turns;
//   - gather lifts the user's own statements whose words come nearest the
//     question's by GloVe (lens.Index.Cover), weak matches included: among
//     the user's statements told once, a weak match means something.

// listRE finds questions that ask for a list gathered over time: a
// quantifier ("every", "all", "each", "everything"), a request to list,
// or a first-person present perfect ("what have I bought", "which cities
// have we been to", "I've"), which asks for everything up to now. These
// are closed-class English words (determiners, auxiliaries, pronouns),
// listed here in full.
var listRE = regexp.MustCompile(`(?i)\b(?:list|every|everything|everywhere|all|each)\b|\b(?:have|has)\s+(?:i|we)\b|\b(?:i|we)(?:'ve|’ve|\s+have)\b`)

// asksList reports whether a question asks for a list gathered over time.
func asksList(q string) bool { return listRE.MatchString(q) }

// asksGathered reports whether a question asks for what the user told
// over time: a value as it stands now (after the changes the history may
// tell) or a list gathered across sessions.
func asksGathered(q string) bool {
	_, current := currentValue(q)
	return current || asksList(q)
}

// gatherAssistantWeight weighs the assistant's blocks against the user's
// for a gathering question (assistantWeight for others). Measured on the
// chat dev seeds at 4096 (32k and 128k): multi-evidence 33 -> 39 %.
const gatherAssistantWeight = 0.15

// Gather parameters, measured with `megacontext eval splits --split dev
// --budgets 4096 --sizes 32k,128k` (README, Recall): knowledge-update
// 11 -> 39 %, multi-evidence 39 -> 44 %, the same for 32 or 48
// statements, floors 0.25 to 0.35, gatherLow 0.4 or 0.5; with 16
// statements, or every statement but the best below the allocator's
// least relevance (gatherLow 0), multi-evidence stays at 39 %.
const (
	// gatherFloor is the least GloVe cosine a word of a statement needs
	// to count as near a word of the question.
	gatherFloor = 0.3
	// gatherN is how many statements gather lifts.
	gatherN = 32
	// gatherShare is the relevance of the best gathered statement, as a
	// share of the best match's; the others get less, by their coverage,
	// down to gatherLow: above the allocator's least relevance
	// (DefaultMinRelevance), so that each is shown when the budget allows.
	gatherShare = 0.6
	gatherLow   = 0.4
	// gatherChecks bounds the candidates gather reads the text of.
	gatherChecks = 256
)

// gather lifts, for a gathering question (asksGathered), the user's own
// statements outside the tail whose words come nearest the question's
// (lens.Index.Cover): told once (saysNew) and not quoted from elsewhere
// (quoted). The best gets gatherShare of the best score, the others less
// by their coverage; a block that scores more keeps its score.
func (e *Engine) gather(c *mctx, question string, scores map[int]float64, inTail func(int) bool) {
	if c.index.Semantic() == nil || !asksGathered(question) {
		return
	}
	ask, _ := splitQuestion(question)
	ask, _ = currentValue(ask)
	keep := func(b int) bool { return !inTail(b) && c.tree.Block(b).Role == "user" }
	cov := c.index.Cover(ask, gatherFloor, c.tree.Len(), keep, c.sentenceGoesOn)
	if len(cov) == 0 {
		return
	}
	best := bestScore(scores)
	if best == 0 {
		best = 1
	}
	type cand struct {
		b int
		s float64
	}
	all := make([]cand, 0, len(cov))
	for b, s := range cov {
		all = append(all, cand{b, s})
	}
	slices.SortFunc(all, func(x, y cand) int {
		if r := cmp.Compare(y.s, x.s); r != 0 {
			return r
		}
		return cmp.Compare(y.b, x.b)
	})
	n := 0
	for i, x := range all {
		if n >= gatherN || i >= gatherChecks {
			break
		}
		if !c.saysNew(x.b) || c.quoted(x.b) {
			continue
		}
		n++
		scores[x.b] = max(scores[x.b], best*(gatherLow+(gatherShare-gatherLow)*x.s/all[0].s))
	}
}

// sentenceGoesOn reports whether block b's last sentence goes on in the
// next block of its message.
func (c *mctx) sentenceGoesOn(b int) bool {
	nb := b + 1
	if nb >= c.tree.Len() || c.tree.Block(nb).Msg != c.tree.Block(b).Msg {
		return false
	}
	return !strings.ContainsAny(lastRune(strings.TrimSpace(c.tree.Block(b).Text)), ".!?")
}

// saysNew reports whether block b holds a word found in at most two
// blocks of the history: a statement of a new value names it (a place, a
// company, a thing bought), where small talk repeats itself.
func (c *mctx) saysNew(b int) bool {
	for _, t := range lens.Terms(c.tree.Block(b).Text) {
		if c.index.DF(t) <= 2 {
			return true
		}
	}
	return false
}

// quoted reports whether block b lies inside quotation marks in its
// message: a passage the user pasted, not what they tell.
func (c *mctx) quoted(b int) bool {
	blk := c.tree.Block(b)
	text := c.msgs[blk.Msg].Text
	i := strings.Index(text, strings.TrimSpace(blk.Text))
	if i < 0 {
		return strings.ContainsAny(blk.Text, "\"“”")
	}
	before := text[:i]
	return strings.Count(before, "\"")%2 == 1 || strings.Count(before, "“") > strings.Count(before, "”")
}

package memory

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
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
// quantifier ("every", "all", "each", "everything", "everyone"), a request to list,
// or a first-person present perfect ("what have I bought", "which cities
// have we been to", "I've"), which asks for everything up to now. These
// are closed-class English words (determiners, auxiliaries, pronouns),
// listed here in full.
var listRE = regexp.MustCompile(`(?i)\b(?:list|every|everything|everyone|everybody|everywhere|all|each)\b|\b(?:have|has)\s+(?:i|we)\b|\b(?:i|we)(?:'ve|’ve|\s+have)\b`)

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
// --budgets 4096` (README, Recall). Before the kin hop (gatherKin) and
// the lift to the best score: knowledge-update 26 %, multi-evidence 41 %,
// overall 84.8 %; with both, 33 %, 41 %, 85.5 % (37 %, 41 %, 85.9 %
// with 4000 checks; kin weights 2 to 8: 85.5 to 86.2 %). The lift alone
// (kin weight 0): 26 %, 33 %, 84.2 %;
// the kin hop alone (32 statements at 0.4-0.6 of the best): 33 %, 44 %,
// 85.9 %.
const (
	// gatherFloor is the least GloVe cosine a word of a statement needs
	// to count as near a word of the question.
	gatherFloor = 0.3
	// gatherN is how many statements gather lifts (32: the same overall).
	gatherN = 48
	// gatherShare is the relevance of the best gathered statement, as a
	// share of the best match's; the others get less, by their score,
	// down to gatherLow. At the best match's level, not below it (0.6 and
	// 0.4 before): for a gathering question, the best lexical matches are
	// small talk that repeats the question's common words ("home",
	// "family", "work"), and they took the budget from the statements.
	gatherShare = 1.0
	gatherLow   = 0.7
	// gatherChecks bounds the candidates gather reads the text of (the
	// user's statements told once are a few hundred of them among up to
	// 2000 candidates at 512K; 4000 recalls one more statement on dev and
	// makes BenchmarkAssembleAssets' p99 about 15 % slower).
	gatherChecks = 1200
	// gatherSeeds is how many of the best statements found by the
	// question seed the kin hop (lens.Index.Kin).
	gatherSeeds = 8
	// gatherRareDF is the most blocks a word may occur in to count as a
	// value a statement names in the kin hop (2 and 6: multi-evidence
	// 33 % and 37 %; 24: knowledge-update 22 %).
	gatherRareDF = 12
	// gatherKinFloor is the least GloVe cosine between a statement's value
	// and a seed's (0.6: knowledge-update 30 %).
	gatherKinFloor = 0.45
	// gatherKin weighs the kin hop against the question's own match, both
	// as shares of the best (1: knowledge-update 30 %, multi-evidence
	// 33 %; 2: 37 %, 37 %; 8: 37 %, 37 %).
	gatherKin = 4.0
)

// gather lifts, for a gathering question (asksGathered), the user's own
// statements outside the tail told once (saysNew) and not quoted from
// elsewhere (quoted) that speak of what the question asks:
//   - those whose words come nearest the question's (lens.Index.Cover);
//   - and their kin (lens.Index.Kin): the best of them seed a hop to the
//     statements that name values of the same kind ("sold the Golf"
//     finds "we lease a Kia Niro"), which share no word with the
//     question: a slot's other values, a list's other items.
//
// Each statement scores its share of the best cover plus gatherKin times
// its share of the best kin; the best gatherN are lifted, the best to
// gatherShare of the best score, the others less by their score; a block
// that scores more keeps its score.
func (e *Engine) gather(c *mctx, question string, scores map[int]float64, inTail func(int) bool) {
	if c.index.Semantic() == nil || !asksGathered(question) {
		return
	}
	ask, _ := splitQuestion(question)
	ask, _ = currentValue(ask)
	keep := func(b int) bool { return !inTail(b) && c.tree.BlockRole(b) == "user" && !c.quoted(b) }
	cov := c.index.Cover(ask, gatherFloor, c.tree.Len(), gatherChecks, keep, c.sentenceGoesOn)
	if len(cov) == 0 {
		return
	}
	best := bestScore(scores)
	if best == 0 {
		best = 1
	}
	var pool []gathered
	for _, x := range cov { // the best gatherChecks, best first
		if c.saysNew(x.Block) && !c.quoted(x.Block) {
			pool = append(pool, gathered{x.Block, x.Score})
		}
	}
	if len(pool) == 0 {
		return
	}
	kinWeight := gatherKin
	if asksList(question) {
		e.rankList(c, ask, pool) // lists.go
		kinWeight = listKin
	}
	seeds := map[int]float64{}
	for _, x := range pool[:min(len(pool), gatherSeeds)] {
		seeds[x.b] = x.s / pool[0].s
	}
	cands := make([]int, len(pool))
	for i, x := range pool {
		cands[i] = x.b
	}
	rare := func(t string) bool { return c.index.DF(t) <= gatherRareDF }
	kin := c.index.Kin(seeds, cands, rare, gatherKinFloor)
	top, kinTop := pool[0].s, bestScore(kin)
	for i, x := range pool {
		pool[i].s = x.s / top
		if kinTop > 0 {
			pool[i].s += kinWeight * kin[x.b] / kinTop
		}
	}
	sortGathered(pool)
	if _, current := currentValue(question); current {
		c.slotBoost(pool)
	}
	for _, x := range pool[:min(len(pool), gatherN)] {
		scores[x.b] = max(scores[x.b], best*(gatherLow+(gatherShare-gatherLow)*x.s/pool[0].s))
	}
}

// gathered is a statement gather weighs: block b, score s.
type gathered struct {
	b int
	s float64
}

// sortGathered sorts statements best first, the newer on ties.
func sortGathered(xs []gathered) {
	slices.SortFunc(xs, func(x, y gathered) int {
		if r := cmp.Compare(y.s, x.s); r != 0 {
			return r
		}
		return cmp.Compare(y.b, x.b)
	})
}

// sentenceGoesOn reports whether block b's last sentence goes on in the
// next block of its message.
func (c *mctx) sentenceGoesOn(b int) bool {
	nb := b + 1
	if nb >= c.tree.Len() || c.tree.BlockMsg(nb) != c.tree.BlockMsg(b) {
		return false
	}
	// The index read the block's text for it at ingest (lens.Index.EndsOpen):
	// Cover asks for thousands of blocks, whose texts lie all over the heap.
	return c.index.EndsOpen(b)
}

// saysNew reports whether block b holds a word found in at most two
// blocks of the history (lens.RareDF): a statement of a new value names it
// (a place, a company, a thing bought), where small talk repeats itself.
// The index keeps the answer for each block (lens.Index.HoldsRare):
// reading up to gatherChecks blocks' text for it was about a sixth of a
// gathering question's assembly at 512K tokens.
func (c *mctx) saysNew(b int) bool { return c.index.HoldsRare(b) }

// quoted reports whether block b lies inside quotation marks in its
// message: a passage the user pasted, not what they tell.
func (c *mctx) quoted(b int) bool {
	blk := c.tree.Block(b)
	text := c.msgs[blk.Msg].Text
	if !strings.ContainsAny(text, "\"“") {
		return false
	}
	i := strings.Index(text, strings.TrimSpace(blk.Text))
	if i < 0 {
		return strings.ContainsAny(blk.Text, "\"“”")
	}
	return quotedSpan(text, i)
}

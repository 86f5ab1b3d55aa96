package memory

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/tree"
)

// This file holds how a question about a day finds that day: a date or
// weekday named in the question, or a day told relative to an event
// ("the day after the move"), brings that day's blocks even when they
// share no word with the question.

// focusOnDays favours what was said on the days a question names ("on
// December 12, 2024", "yesterday") or places next to an event ("the day
// after my driving test": the day after the day of the question's best
// match). Such a question is about that day, whatever words it shares with
// it: the day's blocks get relevance of their own, the user's (what I
// did) more than the assistant's, and those that match the question three
// times their score.
func (e *Engine) focusOnDays(c *mctx, question string, scores map[int]float64, score func([]lens.Term) map[int]float64, inTail func(int) bool) {
	held := func(d time.Time) bool {
		first, last := c.dayBlocks(d)
		return last > first
	}
	days := questionDays(question, e.opts.Now(), held)
	anchor := -1
	var relative time.Time // the day placed next to the event
	if off, phrase, ok := relativeDay(question); ok {
		// The event is what the phrase after "the day after" names ("we
		// flew home"): the rest of the question ("what did I tell you I
		// was doing") would match any day's small talk.
		if q := e.anchorQuery(c, phrase); len(q) > 0 {
			anchor = c.bestCovering(score(q), q)
		}
		if anchor < 0 {
			anchor = bestBlock(scores)
		}
		if anchor >= 0 {
			t := time.UnixMilli(c.tree.Block(anchor).Time).UTC()
			day := time.Date(t.Year(), t.Month(), t.Day()+off, 0, 0, 0, 0, time.UTC)
			// "The day after" is the next day the history holds
			// something on, when the calendar's next day holds nothing.
			for i := 0; i < relativeReach && !held(day); i++ {
				day = day.AddDate(0, 0, sign(off))
			}
			relative = day
		}
	}
	if len(days) == 0 && relative.IsZero() {
		return
	}
	best := 0.0
	for _, s := range scores {
		best = max(best, s)
	}
	if best == 0 {
		best = 1
	}
	// The event's own statement is half of what the question asks ("the
	// day after we flew home": when was that?): it ranks with the day's
	// best, after the loop below.
	defer func() {
		if anchor < 0 || inTail(anchor) {
			return
		}
		top := 0.0
		for _, s := range scores {
			top = max(top, s)
		}
		scores[anchor] = max(scores[anchor], top)
	}()
	all := func(uint32) bool { return true }
	for i, d := range append(days, relative) {
		if d.IsZero() {
			continue
		}
		// The question's words match the event, not the day after it:
		// on that day, a block that says them again is no likelier what
		// the question asks.
		rel := i == len(days)
		first, last := c.dayBlocks(d)
		for b := first; b < last; b++ {
			if inTail(b) {
				continue
			}
			blk := c.tree.Block(b)
			own := dayOtherShare * best
			if blk.Role == "user" {
				own = dayUserShare * best
			}
			// What the day was about is what only that day says: among its
			// blocks, the rarer words first, the recurring small talk last.
			own *= 1 + c.rarity(blk.Text)
			if !rel {
				scores[b] = 3*scores[b] + own
				continue
			}
			if c.index.OnlyRecurring(b, all) {
				own *= recurWeight
			}
			scores[b] = own
		}
	}
}

// rarity is the mean inverse document frequency of the distinct terms of
// text, as a share of the highest possible: 1 for words found nowhere
// else, near 0 for the small talk every block repeats.
func (c *mctx) rarity(text string) float64 {
	top := c.index.IDF("")
	if top <= 0 {
		return 0
	}
	seen := map[string]bool{}
	sum := 0.0
	for _, t := range lens.Terms(text) {
		if !seen[t] {
			seen[t] = true
			sum += c.index.IDF(t)
		}
	}
	if len(seen) == 0 {
		return 0
	}
	return sum / float64(len(seen)) / top
}

// Relevance of a named day's blocks, as a share of the best match: the
// user's as relevant as the best match elsewhere (the question is about
// that day), the assistant's less.
const (
	dayUserShare  = 1
	dayOtherShare = 0.3
)

// bestBlock returns the block with the highest score (the newest on
// ties), or -1.
func bestBlock(scores map[int]float64) int {
	best, bs := -1, 0.0
	for b, s := range scores {
		if s > bs || (s == bs && b > best) {
			best, bs = b, s
		}
	}
	return best
}

var (
	relDayRE  = regexp.MustCompile(`(?i)\b(?:day|morning|evening|night)\s+(after|before)\b`)
	relDaysRE = regexp.MustCompile(`(?i)\b(\d{1,2}|two|three|four|five|six)\s+days\s+(after|before)\b`)
	numWords  = map[string]int{"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
)

// relativeDay returns the day offset a question places relative to an
// event it names, +1 for "the day after", -2 for "two days before", and
// the phrase after it that names the event ("my driving test?").
func relativeDay(q string) (off int, event string, ok bool) {
	dir := func(w string) int {
		if strings.EqualFold(w, "before") {
			return -1
		}
		return 1
	}
	if m := relDaysRE.FindStringSubmatchIndex(q); m != nil {
		w := strings.ToLower(q[m[2]:m[3]])
		n, ok := numWords[w]
		if !ok {
			n, _ = strconv.Atoi(w)
		}
		if n > 0 {
			return dir(q[m[4]:m[5]]) * n, q[m[1]:], true
		}
	}
	if m := relDayRE.FindStringSubmatchIndex(q); m != nil {
		return dir(q[m[2]:m[3]]), q[m[1]:], true
	}
	return 0, "", false
}

// sign returns -1 for a negative n, else 1.
func sign(n int) int {
	if n < 0 {
		return -1
	}
	return 1
}

// bestCovering returns, among the anchorCandidates best scored blocks,
// the one that holds the most of the query's distinct terms, weighted by
// their IDF (the user's own statements first; the better scored on
// ties), or -1. "we flew home": the block that says "flight" and "home"
// is the event, not a short one that says "home" twice.
func (c *mctx) bestCovering(scores map[int]float64, q []lens.Term) int {
	weight := make(map[string]float64, len(q))
	for _, t := range q {
		weight[t.Text] = max(weight[t.Text], t.Weight)
	}
	best, bestCov := -1, 0.0
	for _, b := range topBlocks(scores, anchorCandidates) {
		if cov := c.coverage(c.tree.Block(b), weight); cov > bestCov {
			best, bestCov = b, cov
		}
	}
	return best
}

// coverage is the weighted IDF of the distinct query terms (weight, by
// term) that block b holds, the assistant's blocks weighing
// assistantWeight (the user's own statements first).
func (c *mctx) coverage(b *tree.Node, weight map[string]float64) float64 {
	sum := 0.0
	seen := map[string]bool{}
	for _, t := range lens.Terms(b.Text) {
		if w := weight[t]; w > 0 && !seen[t] {
			seen[t] = true
			sum += w * c.index.IDF(t)
		}
	}
	if b.Role == "assistant" {
		sum *= assistantWeight
	}
	return sum
}

// anchorCandidates is how many of an event phrase's best scored blocks
// bestCovering weighs.
const anchorCandidates = 16

// topBlocks returns the n best scored blocks, best first (the newer on
// ties).
func topBlocks(scores map[int]float64, n int) []int {
	out := slices.Collect(maps.Keys(bestOf(scores, n)))
	slices.SortFunc(out, func(x, y int) int {
		if c := cmp.Compare(scores[y], scores[x]); c != 0 {
			return c
		}
		return cmp.Compare(y, x)
	})
	return out
}

// relativeReach is how many days further "the day after" (or before)
// looks for a day the history holds something on.
const relativeReach = 3

// anchorQuery is the lens query of the phrase that names an event: its
// terms, their thesaurus expansions and the history's words near them
// ("flight" for "flew").
func (e *Engine) anchorQuery(c *mctx, phrase string) []lens.Term {
	lists := [][]lens.Term{lens.Query(phrase, 1)}
	if len(lists[0]) == 0 {
		return nil
	}
	if e.opts.Expander != nil {
		lists = append(lists, e.expand(c, phrase))
	}
	lists = append(lists, c.index.Semantic().SoftTerms(phrase, softOptions))
	return lens.Merge(lists...)
}

// namesHeldDay reports whether question names a day (a date, a weekday,
// "yesterday") on which the history holds something: focusOnDays then
// brings that day's blocks.
func (c *mctx) namesHeldDay(question string, now time.Time) bool {
	held := func(d time.Time) bool {
		first, last := c.dayBlocks(d)
		return last > first
	}
	return slices.ContainsFunc(questionDays(question, now, held), held)
}

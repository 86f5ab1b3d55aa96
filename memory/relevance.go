package memory

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/gist"
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

// query builds the lens query in two parts. main is what the question
// asks: the question sentences of the latest user message and their
// expansions. context is what surrounds it: the rest of that message (the
// small talk around a question recurs all through a history) and the
// earlier turns of the tail. Context only sharpens the ranking of what
// main finds (see combine).
func (e *Engine) query(c *mctx, r Request, tailFrom int) (main, context []lens.Term) {
	var lists, ctx [][]lens.Term
	last := -1
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			last = i
			break
		}
	}
	if last >= 0 {
		text := r.Messages[last].Text
		ask, rest := splitQuestion(text)
		// "these days", "at the moment": when the question asks, not what
		// about; their words (and their synonyms) would match small talk.
		ask, _ = currentValue(ask)
		lists = append(lists, lens.Query(ask, 1))
		ctx = append(ctx, lens.Query(rest, 1))
		if e.opts.Expander != nil {
			lists = append(lists, e.expand(c, ask))
		}
		if hx, ok := e.opts.Expander.(HistoryExpander); ok {
			// The nouns the question describes: "manager" for "who is in
			// charge of me at the office?".
			described := hx.ExpandIn(ask, func(t string) bool { return c.index.DF(t) > 0 })
			lists = append(lists, described)
			if AsksWho(ask) {
				// A role goes by several names: the history's words near
				// the described ones (GloVe), "boss" near "manager".
				lists = append(lists, scaled(c.index.Semantic().Near(described, softOptions, nil), NearWeight))
			}
		}
		// The history's words near the question's (GloVe): "allergic" for
		// "allergies", "boss" for "manager".
		lists = append(lists, c.index.Semantic().SoftTerms(ask, softOptions))
		if asksAboutYou(ask) {
			if d, ok := e.opts.Expander.(Definer); ok {
				// What the assistant was asked for, the user described
				// in their own words: the question's nouns' definitions.
				lists = append(lists, d.Define(ask, func(t string) bool { return c.index.DF(t) > 0 }, func(w string, ts []lens.Term) []lens.Term {
					return c.index.Semantic().Rank(w, ts, DefineFloor, DefineFull)
				}))
			}
			defer func() { main = SuggestionFrame(main) }()
		}
	}
	for i := len(r.Messages) - 1; i >= tailFrom && i >= len(r.Messages)-queryTail; i-- {
		if i != last && !isLeadingRole(r.Messages[i].Role) {
			ctx = append(ctx, lens.Query(r.Messages[i].Text, 1))
		}
	}
	return lens.Merge(lists...), lens.Merge(ctx...)
}

// combine adds to the main scores the context scores, weighted by
// contextWeight, and for each block at most its main score: the context
// picks among the blocks the question matches, it never brings its own
// (recurring small talk would drown the question's rare words). Only when
// the question matches nothing (a follow-up such as "and the other
// one?") does the context stand alone.
func combine(main, context map[int]float64) map[int]float64 {
	if len(main) == 0 {
		for b, s := range context {
			context[b] = contextWeight * s
		}
		return context
	}
	for b, s := range main {
		main[b] = s + min(contextWeight*context[b], s)
	}
	return main
}

// currentRE finds the temporal phrases that ask for a value as it stands
// now ("currently", "these days", "at the moment", "anymore"). They are
// closed-class English (time adverbs and adverbial phrases, not content
// words of any topic), listed here in full.
var currentRE = regexp.MustCompile(`(?i)\b(?:currently|current|nowadays|these days|this days|at the moment|at present|presently|right now|as of now|as things stand|now|any ?more|lately|latest|so far|to date|as yet)\b`)

// currentValue returns the question with its temporal phrases taken out,
// and whether it had one: whether it asks for a value as it is now (after
// the changes the history may tell), or for everything up to now.
func currentValue(q string) (rest string, current bool) {
	if !currentRE.MatchString(q) {
		return q, false
	}
	return strings.Join(strings.Fields(currentRE.ReplaceAllString(q, " ")), " "), true
}

// contextWeight weighs the context's words against the question's.
const contextWeight = 0.3

// splitQuestion splits a user message into its question sentences (those
// ending in a question mark, or opening with a request such as "remind me"
// or "tell me") and the rest. A message with no such sentence is all
// question.
func splitQuestion(text string) (ask, rest string) {
	var a, b []string
	for _, s := range gist.SplitSentences(text) {
		if isAsking(s) {
			a = append(a, s)
		} else {
			b = append(b, s)
		}
	}
	if len(a) == 0 {
		return text, ""
	}
	return strings.Join(a, " "), strings.Join(b, " ")
}

// isAsking reports whether a sentence asks something.
func isAsking(s string) bool {
	if strings.HasSuffix(strings.TrimRight(s, " \"'”)"), "?") {
		return true
	}
	l := strings.ToLower(s)
	for _, p := range []string{"remind me", "tell me", "what ", "which ", "who ", "where ", "when ", "how ", "list ", "can you", "could you", "do you remember"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

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
// (newer statements win ties, so updates outrank what they replace), a
// share for neighbours in the same message, and a share for the reply to
// a matching message (what the assistant said to a request) and for the
// request an answer replied to. It returns the best maxScored (the newer
// on ties), as topScores would keep them.
//
// A question about what the assistant said ("what did you suggest ...")
// is answered by the reply, not by the request the question echoes:
// toYou gives replies more than their request's score. A question that
// gathers what the user told over time (asking.gathered: asksGathered)
// weighs the assistant's text less.
func (e *Engine) scoreBlocks(c *mctx, q []lens.Term, inTail func(int) bool, ak *asking) map[int]float64 {
	asked := make(map[string]bool, len(q))
	for _, t := range q {
		asked[t.Text] = true
	}
	toYou, owned := ak.toYou, ak.owned
	share := replyShare
	if toYou {
		share = replyShareToYou
	}
	// says reports whether block b holds a rare word: a reply that holds
	// none (small talk, an acknowledgement) says nothing to recall.
	says := func(b int) bool {
		if v, ok := ak.says[b]; ok {
			return v
		}
		v := false
		for _, t := range lens.Terms(c.tree.Block(b).Text) {
			if c.index.IDF(t) > replyMinIDF {
				v = true
				break
			}
		}
		ak.says[b] = v
		return v
	}
	// The matches and the scores they give are summed in arrays by block
	// (a question of common words matches most of a long history's
	// blocks), reused from one scoring to the next.
	sc := scratchPool.Get().(*scoreScratch)
	defer scratchPool.Put(sc)
	raw, out := &sc.raw, &sc.out
	c.index.ScoreInto(raw, q, c.tree.Len(), 0.2)
	out.Reset(c.tree.Len())
	// The best matches are checked for matching only through recurring
	// small talk (the rest are too weak to be shown for it). What else
	// reads a block's text (an echoed question, whose thing the block
	// names) is worth reading only for the blocks that can reach the top
	// maxScored: a vague question over a long history matches thousands,
	// and reading each one's text cost more than the rest of the
	// assembly.
	best := raw.Top(maxScored, sc.best)
	sc.best = best
	sc.mark = slices.Grow(sc.mark[:0], c.tree.Len())[:c.tree.Len()]
	for _, b := range best {
		sc.mark[b] = markRead
	}
	sc.top = raw.Top(maxRecurChecks, sc.top)
	for _, b := range sc.top {
		sc.mark[b] |= markRecur // among best too
	}
	defer func() {
		for _, b := range best {
			sc.mark[b] = 0
		}
	}()
	askedHash := make(map[uint32]bool, len(q))
	for _, t := range q {
		askedHash[lens.TermHash(t.Text)] = true
	}
	isAsked := func(h uint32) bool { return askedHash[h] }
	// ownership finds nothing in a block that holds none of the owned
	// terms: the index's term hashes tell which blocks to read.
	isOwned := func(h uint32) bool { return ak.ownedHash[h] }
	whose := func(b int) float64 {
		if !c.index.MayHold(b, isOwned) {
			return 1
		}
		w, ok := ak.ownership[b]
		if !ok {
			w = ownership(c.tree.Block(b).Text, owned)
			ak.ownership[b] = w
		}
		return w
	}
	n := float64(c.tree.Len())
	give := func(b int, s float64) {
		if b >= 0 && b < c.tree.Len() && !inTail(b) {
			out.Add(b, s)
		}
	}
	// A block's score sums the shares of several matches (its own, its
	// neighbours', its exchange's): floating-point sums depend on their
	// order, so the matches are taken in block order, never in a map's
	// (random) order. Two assemblies of the same request must rank ties
	// alike: a dry run shows the very window a live request gets.
	fs := ak.factsOf(c)
	for _, b32 := range raw.Sorted() {
		b := int(b32)
		s := raw.Get(b)
		if inTail(b) {
			continue
		}
		s *= 1 + 0.15*float64(b+1)/n
		fl := fs.block(b)
		// What a person tells about their own life, they tell in their own
		// turns: the assistant's text (stories, passages, advice) weighs
		// less, unless the question asks what the assistant said.
		if fl&factAssistant != 0 {
			switch {
			case !toYou && ak.gathered:
				s *= gatherAssistantWeight
			case !toYou:
				s *= assistantWeight
			default:
				// What the assistant suggested answered a request: a reply
				// counts mostly through the request it answers (below),
				// as one unit, less by its own words (a story it told
				// matches as many questions as its prose has words), and
				// least when its request matches nothing.
				s *= replyOwnToYou
				if !requestMatched(c, b, raw) {
					s *= replyAloneToYou
				}
			}
		}
		read := sc.mark[b]&markRead != 0
		// A question asked before in the same words matches best of all
		// and answers nothing: what answers it is elsewhere.
		if read && c.echoes(b, asked) {
			s *= echoWeight
		}
		if read && len(owned) > 0 {
			s *= whose(b)
		}
		// What recurs all through the history is small talk: its words
		// match many questions and answer none.
		if sc.mark[b]&markRecur != 0 && c.index.OnlyRecurring(b, isAsked) {
			s *= recurWeight
		}
		// What the assistant said is in its own turns: the user's request
		// that the question echoes leads to the reply (below, at its full
		// score) rather than answers, and what the user said they did
		// instead is not what was suggested.
		self := s
		if toYou && fl&factUser != 0 {
			self *= userWeightToYou
		}
		out.Add(b, self)
		// Neighbours in the same message share the score: the block after a
		// hit often holds the value its sentence was leading up to.
		if fl&factPrevSame != 0 {
			give(b-1, 0.3*self)
		}
		if fl&factNextSame != 0 {
			give(b+1, 0.6*self)
		}
		// The other side of the exchange: a request's reply, an answer's
		// request.
		switch role, other := fs.exchange(b); role {
		case factUser:
			for _, x := range other {
				// What the assistant said is a reply that says something:
				// an acknowledgement ("Noted.") of a statement answers no
				// question about it.
				if toYou && !says(int(x)) {
					continue
				}
				give(int(x), share*s)
			}
		case factAssistant:
			for _, x := range other {
				give(int(x), requestShare*s)
			}
		}
	}
	top := out.Top(maxScored, sc.top)
	sc.top = top
	res := make(map[int]float64, len(top))
	for _, b := range top {
		res[int(b)] = out.Get(int(b))
	}
	return res
}

// asking is what scoring a question's queries takes from the question
// besides the query, and what the scorings of one assembly learn about
// blocks that does not depend on the query (the index does not change
// while it assembles).
type asking struct {
	// toYou: the question asks what the assistant said (asksAboutYou).
	toYou bool
	// gathered: the question gathers what the user told over time
	// (asksGathered).
	gathered bool
	// owned are the terms of what the question says is the asker's
	// (ownedTerms), ownedHash their lens.TermHash.
	owned     map[string]bool
	ownedHash map[uint32]bool
	// ownership and says remember, by block, ownership's weight and
	// whether a reply says something.
	ownership map[int]float64
	says      map[int]bool
	// facts are the scored context's block facts (factsOf).
	facts *blockFacts
}

// factsOf returns the block facts of c for this assembly: c's, emptied
// at the assembly's first scoring (the history may have changed since the
// last).
func (ak *asking) factsOf(c *mctx) *blockFacts {
	if f := ak.facts; f != nil && f.c == c {
		return f
	}
	if c.facts == nil {
		c.facts = &blockFacts{}
	}
	f := c.facts
	f.reset(c)
	ak.facts = f
	return f
}

// reset empties f for c's history, clearing only what it read.
func (f *blockFacts) reset(c *mctx) {
	for _, b := range f.readBlocks {
		f.flags[b] = 0
	}
	for _, m := range f.readMsgs {
		f.exRole[m], f.ex[m] = 0, nil
	}
	f.readBlocks, f.readMsgs = f.readBlocks[:0], f.readMsgs[:0]
	if n := c.tree.Len(); len(f.flags) < n {
		f.flags = append(f.flags, make([]uint8, n-len(f.flags))...)
		f.msg = append(f.msg, make([]int64, n-len(f.msg))...)
	}
	if n := len(c.msgs); len(f.exRole) < n {
		f.exRole = append(f.exRole, make([]uint8, n-len(f.exRole))...)
		f.ex = append(f.ex, make([][]int32, n-len(f.ex))...)
	}
	f.c = c
}

// blockFacts is what scoring needs to know of a block besides its score:
// its role, whether its neighbours are in its message, and the blocks of
// the other side of its exchange. Each is read from the tree and the
// messages on first use and kept for the assembly's other queries: their
// nodes and records lie all over the heap, and reading them was most of a
// scoring's time.
type blockFacts struct {
	c *mctx
	// flags holds each block's facts (factRead and the others), msg its
	// message's sequence number once factRead.
	flags []uint8
	msg   []int64
	// exRole holds each message's role as factUser or factAssistant, with
	// factRead once read; ex the blocks of the other side of its exchange
	// (see exchange).
	exRole []uint8
	ex     [][]int32
	// readBlocks and readMsgs list the blocks and messages read (reset).
	readBlocks []int32
	readMsgs   []int64
}

// Facts of a block (blockFacts.flags), and roles of a message (exRole).
const (
	// factRead: the facts are read.
	factRead uint8 = 1 << iota
	// factUser, factAssistant: the role is "user", "assistant".
	factUser
	factAssistant
	// factPrevSame, factNextSame: the block before, after is of the same
	// message.
	factPrevSame
	factNextSame
)

// roleFact returns a role's fact (0 for roles other than user and
// assistant).
func roleFact(role string) uint8 {
	switch role {
	case "user":
		return factUser
	case "assistant":
		return factAssistant
	}
	return 0
}

// block returns block b's facts.
func (f *blockFacts) block(b int) uint8 {
	if fl := f.flags[b]; fl&factRead != 0 {
		return fl
	}
	t := f.c.tree
	blk := t.Block(b)
	fl := factRead | roleFact(blk.Role)
	if b > 0 && t.Block(b-1).Msg == blk.Msg {
		fl |= factPrevSame
	}
	if b+1 < t.Len() && t.Block(b+1).Msg == blk.Msg {
		fl |= factNextSame
	}
	f.flags[b], f.msg[b] = fl, blk.Msg
	f.readBlocks = append(f.readBlocks, int32(b))
	return fl
}

// exchange returns the role of block b's message (factUser, factAssistant
// or 0) and the blocks of the other side of its exchange: of a user's
// message, the first two blocks of each of its assistant replies; of an
// assistant's, the last block of the user's request it answers. block(b)
// must have been read.
func (f *blockFacts) exchange(b int) (role uint8, other []int32) {
	seq := f.msg[b]
	if r := f.exRole[seq]; r&factRead != 0 {
		return r &^ factRead, f.ex[seq]
	}
	c := f.c
	m := c.msgs[seq]
	role = roleFact(m.Role)
	switch role {
	case factUser:
		for _, k := range c.kids[m.Seq] {
			if r := c.msgs[k]; r.Role == "assistant" && r.First >= 0 {
				for x := r.First; x <= min(r.Last, r.First+1); x++ {
					other = append(other, int32(x))
				}
			}
		}
	case factAssistant:
		if m.Parent >= 0 {
			if p := c.msgs[m.Parent]; p.Role == "user" && p.First >= 0 {
				other = []int32{int32(p.Last)}
			}
		}
	}
	f.exRole[seq], f.ex[seq] = role|factRead, other
	f.readMsgs = append(f.readMsgs, seq)
	return role, other
}

// newAsking returns the asking of question, for one assembly.
func newAsking(question string) *asking {
	ak := &asking{toYou: asksAboutYou(question), gathered: asksGathered(question), owned: ownedTerms(question), ownership: map[int]float64{}, says: map[int]bool{}}
	ak.ownedHash = make(map[uint32]bool, len(ak.owned))
	for t := range ak.owned {
		ak.ownedHash[lens.TermHash(t)] = true
	}
	return ak
}

// scoreScratch is scoreBlocks' working memory, kept in scratchPool for
// the next scoring (of any context: each use resets what it touched).
type scoreScratch struct {
	// raw holds the lens's matches, out the scores they give.
	raw, out lens.Scores
	// best is the best matches' blocks; top the best of them, then the
	// best scores' (no order).
	best, top []int32
	// mark holds each block's mark bits (markRead, markRecur), zero but
	// for best's blocks while scoring.
	mark []uint8
}

// Marks of a block among the best matches: its text may be read (an
// echoed question, whose thing), and it is checked for recurring text.
const (
	markRead uint8 = 1 << iota
	markRecur
)

// scratchPool holds scoreScratch values for reuse.
var scratchPool = sync.Pool{New: func() any { return new(scoreScratch) }}

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
		ts := lens.Terms(w)
		if len(ts) == 0 || !owned[ts[0]] {
			continue
		}
		// The word before the owned phrase: skip the phrase's own words.
		j := i - 1
		for j >= 0 && j >= i-2 {
			if ps := lens.Terms(words[j]); len(ps) == 1 && owned[ps[0]] {
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

// recurWeight weighs a block that matches the query only through text
// that recurs all through the history (lens.Index.OnlyRecurring): small
// talk, a pasted boilerplate. A fact told once in the same block as small
// talk ("Unrelated: our new projector is a BenQ") keeps its weight.
const recurWeight = 0.3

// maxRecurChecks bounds the blocks checked for recurring text per query.
const maxRecurChecks = 256

// bestOf returns the n blocks of scores with the highest scores (the
// newer on ties), in one pass with a heap of n (lens.Scores.Top): scores
// may hold most of a long history's blocks, whose indexes its keys are.
func bestOf(scores map[int]float64, n int) map[int]bool {
	if len(scores) <= n {
		out := make(map[int]bool, len(scores))
		for b := range scores {
			out[b] = true
		}
		return out
	}
	last := -1
	for b := range scores {
		last = max(last, b)
	}
	var acc lens.Scores
	acc.Reset(last + 1)
	for b, s := range scores {
		if b >= 0 {
			acc.Add(b, s)
		}
	}
	top := acc.Top(n, nil)
	out := make(map[int]bool, len(top))
	for _, b := range top {
		out[int(b)] = true
	}
	return out
}

// echoWeight weighs a block that only repeats the question.
const echoWeight = 0.2

// echoes reports whether block b belongs to an earlier question in the
// user's words that asks for what the query asks: a user message that asks
// something and whose terms the query holds, nearly all of them.
func (c *mctx) echoes(b int, asked map[string]bool) bool {
	blk := c.tree.Block(b)
	if blk.Role != "user" {
		return false
	}
	m := c.msgs[blk.Msg]
	if m.Last-m.First > 2 {
		return false // a long message says more than it asks
	}
	terms := c.askTerms(m)
	if len(terms) == 0 {
		return false
	}
	in := 0
	for _, t := range terms {
		if asked[t] {
			in++
		}
	}
	return in*10 >= len(terms)*7
}

// askTerms returns the terms of what user message m asks (none when it
// asks nothing), remembered in c.asks while m's text stays the same: the
// best matches of every question over a long history are read again and
// again, and splitting their sentences cost more than scoring them.
func (c *mctx) askTerms(m *msgRecord) []string {
	if a, ok := c.asks[m.Seq]; ok && a.text == m.Text {
		return a.terms
	}
	var terms []string
	if ask, _ := splitQuestion(m.Text); ask != m.Text || isAskingText(m.Text) {
		terms = lens.Terms(ask)
	}
	if c.asks == nil {
		c.asks = map[int64]askMemo{}
	}
	c.asks[m.Seq] = askMemo{text: m.Text, terms: terms}
	return terms
}

// askMemo is what a message asks (askTerms): the terms, and the text they
// were taken from.
type askMemo struct {
	text  string
	terms []string
}

// isAskingText reports whether some sentence of text asks something.
func isAskingText(text string) bool {
	for _, s := range gist.SplitSentences(text) {
		if isAsking(s) {
			return true
		}
	}
	return false
}

// assistantWeight weighs the assistant's blocks against the user's.
const assistantWeight = 0.5

// replyMinIDF is the least IDF of a word that makes a reply say
// something (refocus's threshold of a rare word).
const replyMinIDF = refocusMinIDF

// replyOwnToYou weighs the assistant's blocks' own match when the
// question asks what the assistant said.
const replyOwnToYou = 0.5

// replyAloneToYou further weighs a reply whose request matches nothing
// of the question, when it asks what the assistant said.
const replyAloneToYou = 0.5

// requestMatched reports whether the user message that assistant block b
// replies to has a block among raw's matches.
func requestMatched(c *mctx, b int, raw *lens.Scores) bool {
	m := c.msgs[c.tree.Block(b).Msg]
	if m.Parent < 0 {
		return false
	}
	p := c.msgs[m.Parent]
	if p.Role != "user" || p.First < 0 {
		return false
	}
	for x := p.First; x <= p.Last; x++ {
		if raw.Get(x) > 0 {
			return true
		}
	}
	return false
}

// userWeightToYou weighs the user's blocks against the assistant's when
// the question asks what the assistant said.
const userWeightToYou = 0.5

// Shares of a match's score for the other side of its exchange.
const (
	replyShare      = 0.25
	replyShareToYou = 1.2
	requestShare    = 0.3
)

// toYouRE finds questions about what the assistant said: a verb of
// saying or thinking with "you", or "did you" whatever the verb ("what
// monthly payment did you calculate"; the auxiliary and the pronoun are
// closed-class words).
var toYouRE = regexp.MustCompile(`(?i)\bdid\s+you\b|\b(?:you|your)\b[^.?!]*\b(?:suggest\w*|propos\w*|recommend\w*|told|tell|think|thought|say|said|advis\w*|pick\w*|mention\w*|came up|come up|idea|reckon\w*)\b|\b(?:suggest\w*|propos\w*|recommend\w*|advice|idea)\b[^.?!]*\byou\b`)

// frameWords are the words a question about a suggestion uses to say that
// it was one ("what name did you suggest", "which did you pick", "what
// did you propose we call"): verbs of proposing, naming and saying, a
// closed set of English. Every request and reply of that kind shares them;
// the thing suggested for is what tells one from another.
var frameWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`suggest suggestion propose proposal recommend recommendation advise advice
pick choose choice name call come idea think thought say said tell told mention give gave offer`) {
		m[lens.Stem(w)] = true
	}
	return m
}()

// A question noun's kin counts by its GloVe similarity to the noun
// (lens.Semantic.Rank): not below DefineFloor, fully from DefineFull.
const (
	DefineFloor = 0.3
	DefineFull  = 0.6
)

// frameWeight weighs a frame word of a question about a suggestion
// against its other words.
const frameWeight = 0.25

// SuggestionFrame returns the query of a question about what the
// assistant suggested with its frame words (frameWords) weighed down.
func SuggestionFrame(q []lens.Term) []lens.Term {
	out := make([]lens.Term, len(q))
	for i, t := range q {
		if frameWords[t.Text] {
			t.Weight *= frameWeight
		}
		out[i] = t
	}
	return out
}

// AsksAboutYou reports whether a question asks what the assistant said.
func AsksAboutYou(q string) bool { return asksAboutYou(q) }

// asksAboutYou reports whether a question asks what the assistant said.
func asksAboutYou(q string) bool { return toYouRE.MatchString(q) }

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

// SoftOptions returns the engine's options for soft term matching, which
// baselines use too so that comparisons measure retrieval, not vocabulary.
func SoftOptions() lens.SoftOptions { return softOptions }

// NearWeight weighs the history's words near the nouns a "who" question
// describes against the nouns themselves.
const NearWeight = 1.0

// whoRE finds the interrogative pronouns that ask for a person
// (closed-class English words).
var whoRE = regexp.MustCompile(`(?i)\b(?:who|whom|whose)\b`)

// AsksWho reports whether a question asks for a person ("who is in charge
// of me?"). Its described nouns are roles, which people name with near
// synonyms ("boss", "manager"; "flatmate", "roommate"): their GloVe
// neighbours in the history count too. Other described nouns' neighbours
// are topical rather than synonyms ("night": "morning", "afternoon") and
// lowered recall on the dev seeds (multi-hop-3 93 -> 89 %, temporal-relative
// 70 -> 63 % at 4096).
func AsksWho(q string) bool { return whoRE.MatchString(q) }

// softOptions tune soft term matching.
var softOptions = lens.DefaultSoftOptions

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

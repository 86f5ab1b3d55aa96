package memory

import (
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/lens"
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
		// The history's words WordNet lacks count as the nouns they are
		// linked to (links.go): "physio" for the physiotherapist.
		links := e.linksOf(c)
		if hx, ok := e.opts.Expander.(HistoryExpander); ok {
			// The nouns the question describes: "manager" for "who is in
			// charge of me at the office?".
			described := links.resolve(c, hx.ExpandIn(ask, links.has(c)))
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
				lists = append(lists, links.resolve(c, d.Define(ask, links.has(c), func(w string, ts []lens.Term) []lens.Term {
					return c.index.Semantic().Rank(w, links.resolve(c, ts), DefineFloor, DefineFull)
				})))
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
		for t := range lens.TermSeq(c.tree.Block(b).Text) {
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

package memory

import (
	"regexp"
	"strings"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/lens"
)

// This file holds what a question asks of the history beyond its words:
// whether it asks what the assistant said ("did you suggest …"), which
// facts about each block that needs (role, exchange), and whether a block
// only echoes an earlier asking of the same question.

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
		f.exRole[m] = 0
	}
	f.readBlocks, f.readMsgs, f.exBuf = f.readBlocks[:0], f.readMsgs[:0], f.exBuf[:0]
	if n := c.tree.Len(); len(f.flags) < n {
		f.flags = append(f.flags, make([]uint8, n-len(f.flags))...)
		f.msg = append(f.msg, make([]int64, n-len(f.msg))...)
	}
	if n := len(c.msgs); len(f.exRole) < n {
		f.exRole = append(f.exRole, make([]uint8, n-len(f.exRole))...)
		f.exAt = append(f.exAt, make([][2]int32, n-len(f.exAt))...)
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
	// factRead once read; exBuf[exAt[m][0]:exAt[m][1]] are the blocks of
	// the other side of message m's exchange (see exchange), all in one
	// slice for the assembly.
	exRole []uint8
	exAt   [][2]int32
	exBuf  []int32
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
	msg := t.BlockMsg(b)
	fl := factRead | roleFact(t.BlockRole(b))
	if b > 0 && t.BlockMsg(b-1) == msg {
		fl |= factPrevSame
	}
	if b+1 < t.Len() && t.BlockMsg(b+1) == msg {
		fl |= factNextSame
	}
	f.flags[b], f.msg[b] = fl, msg
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
		at := f.exAt[seq]
		return r &^ factRead, f.exBuf[at[0]:at[1]:at[1]]
	}
	c := f.c
	m := c.msgs[seq]
	role = roleFact(m.Role)
	start := int32(len(f.exBuf))
	switch role {
	case factUser:
		for _, k := range c.kids[m.Seq] {
			if r := c.msgs[k]; r.Role == "assistant" && r.First >= 0 {
				for x := r.First; x <= min(r.Last, r.First+1); x++ {
					f.exBuf = append(f.exBuf, int32(x))
				}
			}
		}
	case factAssistant:
		if m.Parent >= 0 {
			if p := c.msgs[m.Parent]; p.Role == "user" && p.First >= 0 {
				f.exBuf = append(f.exBuf, int32(p.Last))
			}
		}
	}
	end := int32(len(f.exBuf))
	f.exRole[seq], f.exAt[seq] = role|factRead, [2]int32{start, end}
	f.readMsgs = append(f.readMsgs, seq)
	return role, f.exBuf[start:end:end]
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

// echoWeight weighs a block that only repeats the question.
const echoWeight = 0.2

// echoes reports whether block b belongs to an earlier question in the
// user's words that asks for what the query asks: a user message that asks
// something and whose terms the query holds, nearly all of them.
func (c *mctx) echoes(b int, asked map[string]bool) bool {
	if c.tree.BlockRole(b) != "user" {
		return false
	}
	m := c.msgs[c.tree.BlockMsg(b)]
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
	m := c.msgs[c.tree.BlockMsg(b)]
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

package memory

import (
	"strings"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/gist"
)

// Units of detail. A block is at most K tokens and a statement often is
// not: shown alone, a block can cut a sentence, or leave out the lead-in
// ("For future me:") that says what the rest is. The focus zone shows a
// block with the blocks that complete its sentences.

// maxUnitReach bounds how many blocks a unit reaches on each side, for
// text without sentence ends.
const maxUnitReach = 3

// maxContextReach bounds the context of a match on each side: the rest of
// its message, within this many blocks.
const maxContextReach = 8

// sentenceUnit returns the blocks shown with block b: the earlier blocks
// of its message back to the start of b's first sentence (a sentence
// ending in a colon leads into what follows, so it belongs to it), when
// that sentence holds a term of the question (matched reports one, on the
// sentence's text within b); and the later ones up to the end of b's last
// sentence, when that one holds a term or b holds none (b shows for its
// neighbour's sake: the sentence it starts is the one wanted).
func (c *mctx) sentenceUnit(b int, matched func(text string) bool) focus.Range {
	blk := c.tree.Block(b)
	u := focus.Range{First: b, Last: b}
	pieces := gist.SplitSentences(blk.Text)
	if len(pieces) == 0 {
		return u
	}
	any := false
	for _, p := range pieces {
		if matched(p) {
			any = true
			break
		}
	}
	back := any && matched(pieces[0])
	fwd := !any || matched(pieces[len(pieces)-1])
	// Back while the sentence (or its lead-in) started before; forward
	// until the sentence ends. A block holding a sentence end is where the
	// sentence starts or stops.
	for i := 0; back && i < maxUnitReach && u.First > 0; i++ {
		p := c.tree.Block(u.First - 1)
		if p.Msg != blk.Msg || (endsStatement(p.Text) && !leadsIn(p.Text)) {
			break
		}
		u.First--
		if len(gist.SplitSentences(p.Text)) > 1 && !leadsIn(p.Text) {
			break // the sentence starts inside p
		}
	}
	for i := 0; fwd && i < maxUnitReach && u.Last+1 < c.tree.Len(); i++ {
		cur, n := c.tree.Block(u.Last), c.tree.Block(u.Last+1)
		if n.Msg != blk.Msg || (endsStatement(cur.Text) && !leadsIn(cur.Text)) {
			break
		}
		u.Last++
		if holdsSentenceEnd(n.Text) {
			break // the sentence ends inside n
		}
	}
	return u
}

// holdsSentenceEnd reports whether text ends a sentence anywhere in it.
func holdsSentenceEnd(text string) bool {
	ps := gist.SplitSentences(text)
	return len(ps) > 1 || (len(ps) == 1 && endsStatement(text))
}

// messageContext returns the rest of block b's message, within
// maxContextReach blocks of it.
func (c *mctx) messageContext(b int) focus.Range {
	m := c.msgs[c.tree.BlockMsg(b)]
	if m.First < 0 {
		return focus.Range{First: b, Last: b}
	}
	return focus.Range{First: max(m.First, b-maxContextReach), Last: min(m.Last, b+maxContextReach)}
}

// endsStatement reports whether text ends a sentence (or a line).
func endsStatement(text string) bool {
	t := strings.TrimRight(text, " \t")
	if t == "" {
		return true
	}
	if strings.HasSuffix(t, "\n") {
		return true
	}
	t = strings.TrimRight(t, "\"')]*")
	if t == "" {
		return true
	}
	switch t[len(t)-1] {
	case '.', '!', '?', ':', ';':
		return true
	}
	return false
}

// leadsIn reports whether text ends with a colon: what it says leads into
// what follows.
func leadsIn(text string) bool {
	return strings.HasSuffix(strings.TrimRight(text, " \t"), ":")
}

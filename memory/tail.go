package memory

import (
	"github.com/megacontext/megacontext/memory/focus"
)

// messageCost is a request message's token cost in the prompt.
func (e *Engine) messageCost(c *mctx, r Request, seqs []int64, i int) int {
	m := r.Messages[i]
	cost := r.PerMessage + m.Extra
	if i < len(seqs) {
		return cost + c.msgs[seqs[i]].Tokens
	}
	return cost + e.countCached(m.Text)
}

func sortRanges(rs []focus.Range) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].First < rs[j-1].First; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// selectTail chooses the verbatim tail of a request: the leading system
// prompts and the last user message with what follows it always, then
// earlier turns back to the start of the conversation when it all fits in
// three quarters of the budget, else up to TailPercent of the budget. It
// sets w.Leading and w.TailFrom and returns the token costs of the leading
// prompts and of the tail, and the fixed cost of the memory message; ok is
// false when the mandatory part alone does not fit.
func (e *Engine) selectTail(c *mctx, r Request, seqs []int64, w *Window) (lead, tail, memFixed int, ok bool) {
	n := len(r.Messages)
	for w.Leading < n && isLeadingRole(r.Messages[w.Leading].Role) {
		w.Leading++
	}
	for i := 0; i < w.Leading; i++ {
		lead += e.messageCost(c, r, seqs, i)
	}
	used := lead
	// The mandatory tail: the last user message and everything after it.
	must := n - 1
	for i := n - 1; i >= w.Leading; i-- {
		if r.Messages[i].Role == "user" {
			must = i
			break
		}
	}
	if must < w.Leading {
		must = w.Leading
	}
	for i := must; i < n; i++ {
		tail += e.messageCost(c, r, seqs, i)
	}
	memFixed = e.countCached(e.preambleFor(r.Budget)) + e.countCached(Closing) + r.PerMessage + 2
	if used+tail > r.Budget {
		return lead, tail, memFixed, false
	}
	// Extend the tail backwards: everything when the conversation fits in
	// three quarters of the budget, else up to TailPercent of it.
	all := tail
	for i := w.Leading; i < must; i++ {
		all += e.messageCost(c, r, seqs, i)
	}
	w.TailFrom = must
	if used+all+memFixed <= r.Budget*3/4 {
		w.TailFrom, tail = w.Leading, all
	} else {
		cap := r.Budget * r.TailPercent / 100
		for i := must - 1; i >= w.Leading; i-- {
			mc := e.messageCost(c, r, seqs, i)
			if tail+mc > cap || used+tail+mc+memFixed > r.Budget {
				break
			}
			tail += mc
			w.TailFrom = i
		}
		// A tool result must follow the assistant message that called the
		// tool: never start the tail between them (the results move to memory).
		for w.TailFrom < must && r.Messages[w.TailFrom].Role == "tool" {
			tail -= e.messageCost(c, r, seqs, w.TailFrom)
			w.TailFrom++
		}
	}
	return lead, tail, memFixed, true
}

// tailBlockRanges returns the block ranges of the stored request messages
// in the verbatim tail (from index tailFrom on), merged and sorted: the
// lens and the allocator leave them out of memory.
func tailBlockRanges(c *mctx, r Request, seqs []int64, tailFrom int) []focus.Range {
	var out []focus.Range
	for i := tailFrom; i < len(r.Messages) && i < len(seqs); i++ {
		m := c.msgs[seqs[i]]
		if m.First < 0 {
			continue
		}
		if k := len(out); k > 0 && out[k-1].Last+1 == m.First {
			out[k-1].Last = m.Last
		} else {
			out = append(out, focus.Range{First: m.First, Last: m.Last})
		}
	}
	sortRanges(out)
	return out
}

// The working window: Prepare reconciles a request with memory and
// assemble puts the window together from the verbatim tail (tail.go), the
// lens's relevance scores (relevance.go) and the focus allocator, then
// renders it (render.go).

package memory

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/tree"
)

// Request asks for a working window.
type Request struct {
	Key      Key
	Messages []Message
	// Budget is the tokens the whole prompt may use: the model's context
	// minus reserved output, tool schemas and the safety margin.
	Budget int
	// PerMessage is the chat template's token cost per message.
	PerMessage int
	// TailPercent caps the verbatim recent tail as a share of Budget.
	TailPercent int
	// DryRun assembles without storing anything or updating telemetry.
	DryRun bool
	// AsLive, with DryRun, assembles exactly the window a live request with
	// these messages would get now: its new messages are ingested in
	// memory only (their blocks count in the lens and may complete gists),
	// then taken back. Without it a dry run leaves new messages out of
	// memory altogether (evaluation replays questions this way).
	AsLive bool
	// KeepFocus, with DryRun, still records the window's focus for the next
	// request's hysteresis, as a real request does (evaluation replays).
	KeepFocus bool
	// Explain, with DryRun, completes the window's explanation before it
	// returns: each entry's matched terms and the omitted matches.
	Explain bool
	// Scopes are the caller's clearances for the policy's rules.
	Scopes []string
	// Decode, when set, lets Messages arrive undecoded: only Raw, the
	// client's JSON of each message, byte for byte. Prepare then finds the
	// stored ones by a hash of those bytes and decodes only the others (the
	// new suffix of a resent history), so that a long history resent every
	// turn is hashed rather than parsed again. Prepare fills in every
	// message of Messages in place (those found in the store from what it
	// holds: role, name, extra tokens, and the text of the last turns).
	Decode Decoder
	// Mounts name other MegaContexts of the tenant the window also draws
	// on, read-only (mount.go); one that does not exist is ErrMountNotFound.
	Mounts []string
}

// Window is an assembled working window.
type Window struct {
	// Leading is the number of client system prompts at the start of the
	// request, rendered first and unchanged.
	Leading int
	// TailFrom is the index of the first request message in the verbatim
	// tail; messages between Leading and TailFrom are represented by Memory.
	TailFrom int
	// Memory is the rendered memory text, empty when there is none.
	Memory string
	// Entries describes the memory entries, oldest first.
	Entries []EntryInfo
	// Tokens is the prompt's token count by the engine's counter (upper bound).
	Tokens int
	// MemoryTokens is the memory text's share of Tokens.
	MemoryTokens int
	// HistoryTokens is the token count of the whole MegaContext.
	HistoryTokens int
	// Expanded counts focus expansions.
	Expanded int
	// Omitted counts history blocks the window shows in no form: even the
	// coarsest cover did not fit, and no detail reached them.
	Omitted int
	// LastSeq is the stored sequence number of the last request message,
	// the parent of the response.
	LastSeq int64
	// NextSeq is the sequence number the next stored message will get: pass
	// it to AppendResponse.
	NextSeq int64
	// NewMessages counts messages this request added to memory.
	NewMessages int
	// Hits lists the policy filtering applied to the memory text.
	Hits []policy.Hit
	// OmittedMatches are the best relevant blocks the window does not show
	// verbatim, with why; set by explain (Request.Explain, KeepWindow).
	OmittedMatches []OmittedMatch
	// why is what explain and KeepWindow need.
	why *whyInput
}

// EntryInfo describes one memory entry of a window.
type EntryInfo struct {
	Level  int    `json:"level"`
	Index  int    `json:"index"`
	First  int    `json:"first_block"`
	Last   int    `json:"last_block"`
	Detail string `json:"detail"`
	Tokens int    `json:"tokens"`
	// Reason says why the entry is in the window: "outline" (the coarsest
	// cover, whatever the question), "recent" (the newest history detailed
	// with budget left), "expanded" (a relevance expansion, in round Round),
	// "hysteresis" (expanded in the previous window), "weak match" (shown
	// with what budget was left), "context" (around a match: the rest of
	// its message, with what budget was left) or "pinned".
	Reason string `json:"reason"`
	// Round is the relevance round of an "expanded" entry (1, 2, 3).
	Round int `json:"round,omitempty"`
	// Score is the node's relevance when the allocator placed it (0 for
	// outline and recent entries).
	Score float64 `json:"score"`
	// Terms are the question's terms (and the refocus round's) that the
	// entry's text holds, stemmed as the lens indexes them; set by Explain.
	Terms []string `json:"terms,omitempty"`
	// Similarity is the semantic lens's cosine similarity of the block to
	// the question, when it scored it; set by Explain.
	Similarity float64 `json:"similarity,omitempty"`
	// Withheld marks an entry the policy kept out of the text for the caller.
	Withheld bool `json:"withheld,omitempty"`
	// At is where the entry's text lies in the memory text, in bytes
	// [start, end) (empty when withheld).
	At [2]int `json:"at"`
	// Memory names the mounted memory the entry quotes; empty for the own.
	Memory string `json:"memory,omitempty"`
}

// outlineStep is how many of the outline's oldest gists collapse to
// headlines at a time, so that the outline's start changes in steps as
// history grows.
const outlineStep = 4

// Prepare reconciles the request's messages with memory (storing new ones
// durably, unless DryRun) and assembles the working window.
func (e *Engine) Prepare(r Request) (*Window, error) {
	return retry(e, r.Key, func() (*Window, error) { return e.prepare(r) })
}

func (e *Engine) prepare(r Request) (*Window, error) {
	var c *mctx
	var mounts []*mctx
	checked := true
	var err error
	if !r.DryRun && len(r.Mounts) == 0 {
		// The ingest's write checks the cached context (acquireToWrite).
		c, checked, err = e.acquireToWrite(r.Key, true)
	} else {
		c, mounts, err = e.acquireWithMounts(r.Key, !r.DryRun, r.Mounts)
	}
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	for _, m := range mounts {
		defer m.mu.Unlock()
	}
	var seqs []int64
	// written waits for the ingest's write still in flight (ingestStart).
	var written func() error
	w := &Window{LastSeq: -1}
	// What cannot be sent is not stored: a turn too long for the budget is
	// refused before anything is written.
	fits := func(seqs []int64) bool {
		_, _, _, ok := e.selectTail(c, r, seqs, &Window{})
		return ok
	}
	switch {
	case r.DryRun && r.AsLive:
		defer c.rollback(c.checkpoint())
		var s staged
		s, err = e.stage(c, r.Key, r.Messages, r.Decode, e.opts.Now(), fits, false)
		seqs, w.NewMessages = s.seqs, s.added
	case r.DryRun:
		var whole listSum
		seqs, _, _, whole, err = e.reconcile(c, r.Key, r.Messages, r.Decode, false)
		if err == nil && len(seqs) == len(r.Messages) {
			c.remember(whole, seqs)
		}
	default:
		base := c.version
		// With a shared store the new messages' write (one round trip)
		// runs while the window is assembled from the context as staged;
		// the window leaves only once the write's guard vouched for it.
		seqs, w.NewMessages, written, err = e.ingestStart(c, r.Key, r.Messages, r.Decode, e.opts.Now(), fits)
		if written != nil {
			defer func() {
				if written != nil {
					written() // a panic on the way: c still takes the outcome
				}
			}()
		} else if !checked {
			if err = e.checkUnwritten(c, base, err); err != nil {
				return nil, err
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if len(seqs) > 0 {
		w.LastSeq = seqs[len(seqs)-1]
	}
	w.NextSeq = int64(len(c.msgs))
	w.why = &whyInput{c: c, question: lastUserText(r.Messages), scopes: r.Scopes}
	e.assembleMounted(c, r, seqs, w, mounts)
	if written != nil {
		err, written = written(), nil
		if err != nil {
			return nil, err
		}
	}
	if w.TailFrom < 0 {
		return nil, ErrTooLong
	}
	w.why.tail = seqs[min(w.TailFrom, len(seqs)):]
	if r.DryRun && r.Explain {
		e.explain(c, w)
	}
	return w, nil
}

func (e *Engine) assemble(c *mctx, r Request, seqs []int64, w *Window) {
	w.HistoryTokens = c.rec.Tokens
	lead, tail, memFixed, ok := e.selectTail(c, r, seqs, w)
	if !ok {
		w.TailFrom = -1
		return
	}
	used := lead + tail
	w.Tokens = used
	if c.tree.Len() == 0 {
		return
	}
	memBudget := r.Budget - used - memFixed
	if memBudget <= 0 {
		w.Omitted = c.tree.Len()
		return
	}
	tailRanges := tailBlockRanges(c, r, seqs, w.TailFrom)
	query, context := e.query(c, r, w.TailFrom)
	inTail := func(b int) bool {
		for _, tr := range tailRanges {
			if b >= tr.First && b <= tr.Last {
				return true
			}
		}
		return false
	}
	// Pinned blocks take their place before the allocator spends the rest;
	// it tiles the timeline around them as around the tail.
	pinned, pinCost := e.pinnedBlocks(c, tailRanges, r.Budget, memBudget)
	allocTail := tailRanges
	if len(pinned) > 0 {
		memBudget -= pinCost
		allocTail = withPinned(tailRanges, pinned)
	}
	question := lastUserText(r.Messages)
	score := e.scorer(c, question, inTail)
	rescore := memoScores(score)
	round := query // the query of the last relevance round
	searched := map[string]bool{}
	// matched reports text holding a term of any round's query.
	asked := map[string]bool{}
	for _, t := range query {
		asked[t.Text] = true
	}
	// The focus zone weighs the same blocks' sentences in every round and
	// fitting: each sentence is split into terms once.
	sentenceTerms := map[string][]string{}
	matched := func(text string) bool {
		ts, ok := sentenceTerms[text]
		if !ok {
			ts = lens.Terms(text)
			sentenceTerms[text] = ts
		}
		for _, t := range ts {
			if asked[t] || searched[t] {
				return true
			}
		}
		return false
	}
	scores, semantic := e.memoryScores(c, score, query, context, question, inTail)
	// A question about a day (named, or the day after an event) asks what
	// that day holds, which the day's or the event's words lead nowhere
	// near: no hops, the budget goes to the day (focusOnDays).
	_, _, relDay := relativeDay(question)
	relDay = relDay || c.namesHeldDay(question, e.opts.Now())
	// What explains the window later (explain), kept by reference: nothing
	// is computed for it on the request path.
	why := w.why
	why.query, why.scores, why.semantic, why.minRelevance = query, scores, semantic, e.opts.MinRelevance
	in := focus.Input{
		Tree:     c.tree,
		Tail:     allocTail,
		Budget:   memBudget,
		Scores:   scores,
		Overhead: entryOverhead,
		Sticky:   func(n *tree.Node) bool { return c.sticky[[2]int{n.Level, n.Index}] },
		Rounds:   3,
		// Tuned with `megacontext eval` (see README).
		MinRelevance: e.opts.MinRelevance,
		Refocus: func(n int, revealed []*tree.Node) map[int]float64 {
			if relDay {
				return nil
			}
			if n == 1 {
				// A new fitting of the window: the hops start over from the
				// question, whatever an earlier fitting followed.
				round = query
				clear(searched)
				why.refocus, why.rescored = why.refocus[:0], nil
			}
			// The revealed blocks that cover the round's query best lead on:
			// the question's terms first, then what the last round followed.
			extra, from := e.refocusTerms(c, round, searched, revealed)
			if len(extra) == 0 {
				return nil
			}
			round = extra
			// The next round follows what the revealed text points to, and
			// the question, lower, picks among the blocks that name it.
			why.refocus = append(why.refocus, extra...)
			why.rescored = maps.Clone(rescore(lens.Merge(extra, scaled(query, refocusQuestionWeight))))
			// The next hop is another block than this one, which holds the
			// new terms too and the question's besides: it would lead again.
			for _, b := range from {
				delete(why.rescored, b)
			}
			return why.rescored
		},
	}
	if e.opts.Render == RenderOutline {
		in.OutlineBudget = e.outlineBudget(r, lead+memFixed, memBudget)
		in.OutlineStep = outlineStep
		in.OutlineQuantum = max(16, r.Budget/16)
		// The details may claim what plain retrieval would spend on its
		// matches, half the budget, before the outline takes its share;
		// in a small window, more (detailShare).
		in.DetailFloor = max(min(memBudget, r.Budget/2), int(detailShare(r.Budget)*float64(memBudget)))
		in.Unit = func(b int) focus.Range { return c.sentenceUnit(b, matched) }
		in.Context = func(b int) focus.Range { return c.messageContext(b) }
		// The header's line break is the +1.
		in.Details = func(n *tree.Node) int { return e.detailsCost(n) + 1 }
		// In a tiny window a header naming a span costs what a
		// statement does (46 tokens of stories260K against 42 for a
		// 13-word sentence), and each block's own header dates it: the
		// details go without (README, Recall, small windows).
		in.Headless = r.Budget <= headlessWindow
		if r.Budget <= stampedWindow {
			// A block's own header, its time and role, costs 24 to 28
			// tokens of stories260K, as much as a short statement: the
			// details say each time once for the blocks that share it
			// (render.go, stamped).
			in.Follow = e.stampedOverhead
		}
	}
	res := focus.Allocate(in)
	if len(pinned) > 0 {
		set := make(map[int]bool, len(pinned))
		for _, b := range pinned {
			set[b] = true
		}
		markPinned(c, res.Entries, set)
		markPinned(c, res.Outline, set)
		res.Cost += pinCost
	}
	why.res, why.blocks, why.pre = res, c.tree.Blocks(), e.preambleFor(r.Budget)
	for l := 0; l < c.tree.Height(); l++ {
		why.levels = append(why.levels, c.tree.LevelLen(l))
	}
	w.Expanded = res.Expanded
	w.Omitted = res.Omitted
	if res.Outline != nil {
		w.Memory, w.Entries, w.Hits = e.renderZones(c, res, r.Scopes, why.pre)
	} else {
		w.Memory, w.Entries, w.Hits = e.render(c, res.Entries, r.Scopes)
	}
	if w.Memory != "" {
		w.MemoryTokens = res.Cost + memFixed
		w.Tokens += w.MemoryTokens
	}
	if !r.DryRun || r.KeepFocus {
		clear(c.sticky)
		for _, en := range res.Entries {
			// An elided entry is not shown: expanding its parent again
			// would gain nothing.
			if !en.Tail && en.Detail != focus.Elided {
				for p := c.tree.Parent(en.Node); p != nil; p = c.tree.Parent(p) {
					c.sticky[[2]int{p.Level, p.Index}] = true
				}
				// The focus zone shows only some blocks of an expansion:
				// remember which, so that hysteresis shows them again.
				if en.Refines != nil && en.Detail == focus.Verbatim {
					c.sticky[[2]int{0, en.Node.Index}] = true
				}
			}
		}
	}
}

// outlineBudget is RenderOutline's budget for the outline. It depends on
// the request's budget, not on how much of it the tail takes now, so that
// the outline stays put while a conversation grows: OutlineShare of the
// memory budget left when the tail takes its cap (TailPercent). Only when
// the tail takes more (a whole conversation that fits in three quarters)
// is it capped, at maxOutlineShare of the memory budget rounded down to
// 1/16 of the budget, so that it shrinks in steps.
func (e *Engine) outlineBudget(r Request, fixed, memBudget int) int {
	base := r.Budget*(100-r.TailPercent)/100 - fixed
	ob := int(e.opts.OutlineShare * float64(base))
	q := max(16, r.Budget/16)
	if cap := int(maxOutlineShare * float64(memBudget/q*q)); ob > cap {
		ob = cap
	}
	return max(1, ob)
}

// refocusQuestionWeight weighs the question's terms in refocus rounds.
const refocusQuestionWeight = 0.3

// scaled returns the terms with their weights times f.
func scaled(q []lens.Term, f float64) []lens.Term {
	out := make([]lens.Term, len(q))
	for i, t := range q {
		out[i] = lens.Term{Text: t.Text, Weight: t.Weight * f}
	}
	return out
}

// maxScored bounds the blocks a relevance round hands the allocator: the
// best ones, many times what any budget shows.
const maxScored = 1500

// topScores keeps the n best scores (the newer on ties).
func topScores(scores map[int]float64, n int) map[int]float64 {
	if len(scores) <= n {
		return scores
	}
	type bs struct {
		b int
		s float64
	}
	all := make([]bs, 0, len(scores))
	for b, s := range scores {
		all = append(all, bs{b, s})
	}
	slices.SortFunc(all, func(x, y bs) int {
		if c := cmp.Compare(y.s, x.s); c != 0 {
			return c
		}
		return cmp.Compare(y.b, x.b)
	})
	out := make(map[int]float64, n)
	for _, x := range all[:n] {
		out[x.b] = x.s
	}
	return out
}

// maxOutlineShare is the most of the memory budget the outline may take.
const maxOutlineShare = 0.8

// detailShare is the share of the memory budget the details may claim
// before the outline gets its share: half at largeWindow tokens and more
// (plain retrieval's half), rising to smallWindowShare at smallWindow
// tokens and less, linearly in the budget's logarithm between. An outline
// of a few headlines gives a small window what overview it can hold; the
// rest is worth more as the question's evidence (issue 9: rag plus
// structure, never rag minus). Measured with `megacontext eval splits
// --budgets 1024 --vocab stories260K.gguf` (README, Recall).
func detailShare(budget int) float64 {
	switch {
	case budget <= smallWindow:
		return smallWindowShare
	case budget >= largeWindow:
		return 0.5
	}
	f := math.Log2(float64(largeWindow)/float64(budget)) / math.Log2(float64(largeWindow)/float64(smallWindow))
	return 0.5 + f*(smallWindowShare-0.5)
}

// headlessWindow is the largest window whose details go under no header
// naming a span. At 1024 tokens of stories260K it gained one question of
// the chat dev set's 297 and lost one of docs dev's 81, and a described
// request of memory/said_fresh_test.go; at 512 it gained 18 and 4.
const headlessWindow = smallWindow / 2

// stampedWindow is the largest window whose details say each time once
// for the blocks that share it (Input.Follow, stampedOverhead). Chat dev
// 32k,128k stories260K: at 512 temporal 83 -> 89 %, temporal-relative 67
// -> 72; at 1024 (headless then) 78.3 -> 79.3 % overall, but a described
// request of memory/said_fresh_test.go lost, as headlessWindow's note says.
const stampedWindow = headlessWindow

// The window sizes between which detailShare rises, and its share at the
// small end: the outline keeps an eighth.
const (
	smallWindow      = 1024
	largeWindow      = 4096
	smallWindowShare = 7.0 / 8
)

// memoScores remembers score's answers by query: the outline's refits
// refocus again from the question, and their hops follow the same terms
// (scoring a query over a long history is most of an assembly). The
// caller must not change a returned map.
func memoScores(score func([]lens.Term) map[int]float64) func([]lens.Term) map[int]float64 {
	seen := map[string]map[int]float64{}
	var sb strings.Builder
	return func(q []lens.Term) map[int]float64 {
		sb.Reset()
		for _, t := range q {
			sb.WriteString(t.Text)
			sb.WriteByte(' ')
			sb.WriteString(strconv.FormatFloat(t.Weight, 'g', -1, 64))
			sb.WriteByte(' ')
		}
		k := sb.String()
		if s, ok := seen[k]; ok {
			return s
		}
		s := score(q)
		seen[k] = s
		return s
	}
}

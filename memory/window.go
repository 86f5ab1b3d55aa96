package memory

import (
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	// KeepFocus, with DryRun, still records the window's focus for the next
	// request's hysteresis, as a real request does (evaluation replays).
	KeepFocus bool
	// Scopes are the caller's clearances for the policy's rules.
	Scopes []string
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
	// Omitted counts history blocks left out because even the coarsest
	// cover did not fit.
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
}

// EntryInfo describes one memory entry of a window.
type EntryInfo struct {
	Level  int    `json:"level"`
	Index  int    `json:"index"`
	First  int    `json:"first_block"`
	Last   int    `json:"last_block"`
	Detail string `json:"detail"`
	Tokens int    `json:"tokens"`
}

// Preamble opens the memory text.
const Preamble = "<memory>\nEarlier conversation from your long-term memory, oldest first, times in UTC. Lines with ~ summarize a span; other lines quote messages verbatim.\n"

// OutlinePreamble opens the memory text in RenderOutline mode.
const OutlinePreamble = "<memory>\nEarlier conversation from your long-term memory, times in UTC: an outline, oldest first, then details of some of its spans. Lines with ~ summarize a span; other lines quote messages verbatim.\n"

// outlineStep is how many of the outline's oldest gists collapse to
// headlines at a time, so that the outline's start changes in steps as
// history grows.
const outlineStep = 4

// Closing ends the memory text.
const Closing = "</memory>"

const timeLayout = "2006-01-02 15:04"

func blockHeader(ms int64, role string) string {
	return "[" + time.UnixMilli(ms).UTC().Format(timeLayout) + "] " + role + ": "
}

func gistHeader(from, to int64) string { return spanLabel(from, to) + " ~ " }

// spanLabel names a time span: "[2025-01-06 09:00 – 11:30]".
func spanLabel(from, to int64) string {
	a, b := time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	start, end := a.Format(timeLayout), b.Format(timeLayout)
	switch {
	case start == end:
		return "[" + start + "]"
	case a.Format("2006-01-02") == b.Format("2006-01-02"):
		end = b.Format("15:04")
	}
	return "[" + start + " – " + end + "]"
}

// detailsHeader introduces the focus zone's details of an outline entry.
func detailsHeader(n *tree.Node) string { return "Details of " + spanLabel(n.Time, n.TimeEnd) + ":" }

// preamble opens the memory text.
func (e *Engine) preamble() string {
	if e.opts.Render == RenderOutline {
		return OutlinePreamble
	}
	return Preamble
}

// entryOverhead is what rendering adds to an entry: its header (counted
// alone, which is at least what it costs joined to the text), a line break,
// and an ellipsis for a block that starts mid-message; nothing for a block
// that continues its predecessor's message; a marker for a headline.
func entryOverhead(n *tree.Node, d focus.Detail, prev *tree.Node) int {
	switch {
	case d == focus.Short:
		return shortOverhead
	case n.Level == 0 && continues(prev, n):
		return 0
	case n.Level == 0 && n.Part > 0:
		return n.Head + 2
	default:
		return n.Head + 1
	}
}

// shortOverhead is the cost of a headline's line break and "~ " marker.
const shortOverhead = 2

// continues reports whether block n directly follows block prev in one message.
func continues(prev, n *tree.Node) bool {
	return prev != nil && prev.Level == 0 && n.Level == 0 && prev.Msg == n.Msg && prev.Part+1 == n.Part
}

// Prepare reconciles the request's messages with memory (storing new ones
// durably, unless DryRun) and assembles the working window.
func (e *Engine) Prepare(r Request) (*Window, error) {
	c, err := e.acquire(r.Key, !r.DryRun)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	var seqs []int64
	w := &Window{LastSeq: -1}
	if r.DryRun {
		seqs, _ = c.match(r.Key, r.Messages)
	} else {
		seqs, w.NewMessages, err = e.ingest(c, r.Key, r.Messages, e.opts.Now())
		if err != nil {
			return nil, err
		}
	}
	if len(seqs) > 0 {
		w.LastSeq = seqs[len(seqs)-1]
	}
	w.NextSeq = int64(len(c.msgs))
	e.assemble(c, r, seqs, w)
	if w.TailFrom < 0 {
		return nil, ErrTooLong
	}
	return w, nil
}

// messageCost is a request message's token cost in the prompt.
func (e *Engine) messageCost(c *mctx, r Request, seqs []int64, i int) int {
	m := r.Messages[i]
	cost := r.PerMessage + m.Extra
	if i < len(seqs) {
		return cost + c.msgs[seqs[i]].Tokens
	}
	return cost + e.countCached(m.Text)
}

func (e *Engine) assemble(c *mctx, r Request, seqs []int64, w *Window) {
	n := len(r.Messages)
	w.HistoryTokens = c.rec.Tokens
	for w.Leading < n && isLeadingRole(r.Messages[w.Leading].Role) {
		w.Leading++
	}
	used := 0
	for i := 0; i < w.Leading; i++ {
		used += e.messageCost(c, r, seqs, i)
	}
	lead := used
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
	tail := 0
	for i := must; i < n; i++ {
		tail += e.messageCost(c, r, seqs, i)
	}
	memFixed := e.countCached(e.preamble()) + e.countCached(Closing) + r.PerMessage + 2
	if used+tail > r.Budget {
		w.TailFrom = -1
		return
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
	used += tail
	w.Tokens = used
	if c.tree.Len() == 0 {
		return
	}
	memBudget := r.Budget - used - memFixed
	if memBudget <= 0 {
		w.Omitted = c.tree.Len()
		return
	}
	var tailRanges []focus.Range
	for i := w.TailFrom; i < n && i < len(seqs); i++ {
		m := c.msgs[seqs[i]]
		if m.First < 0 {
			continue
		}
		if k := len(tailRanges); k > 0 && tailRanges[k-1].Last+1 == m.First {
			tailRanges[k-1].Last = m.Last
		} else {
			tailRanges = append(tailRanges, focus.Range{First: m.First, Last: m.Last})
		}
	}
	sortRanges(tailRanges)
	query := e.query(c, r, w.TailFrom)
	inTail := func(b int) bool {
		for _, tr := range tailRanges {
			if b >= tr.First && b <= tr.Last {
				return true
			}
		}
		return false
	}
	score := func(q []lens.Term) map[int]float64 { return e.scoreBlocks(c, q, inTail) }
	scores := score(query)
	// Semantic similarity (when an embedder is configured) finds what shares
	// no words with the question.
	for b, s := range e.semanticScores(c, lastUserText(r.Messages), inTail) {
		scores[b] += s
	}
	e.focusOnDays(c, lastUserText(r.Messages), scores, inTail)
	in := focus.Input{
		Tree:     c.tree,
		Tail:     tailRanges,
		Budget:   memBudget,
		Scores:   scores,
		Overhead: entryOverhead,
		Sticky:   func(n *tree.Node) bool { return c.sticky[[2]int{n.Level, n.Index}] },
		Rounds:   2,
		// Tuned with `megacontext eval` (see README).
		MinRelevance: e.opts.MinRelevance,
		Refocus: func(revealed []*tree.Node) map[int]float64 {
			extra := e.refocusTerms(c, query, revealed)
			if len(extra) == 0 {
				return nil
			}
			// The next round follows only what the revealed text points to.
			return score(extra)
		},
	}
	if e.opts.Render == RenderOutline {
		in.OutlineBudget = e.outlineBudget(r, lead+memFixed, memBudget)
		in.OutlineStep = outlineStep
		// The header's line break is the +1.
		in.Details = func(n *tree.Node) int { return e.countCached(detailsHeader(n)) + 1 }
	}
	res := focus.Allocate(in)
	w.Expanded = res.Expanded
	w.Omitted = res.Cut
	if res.Outline != nil {
		w.Memory, w.Entries, w.Hits = e.renderZones(c, res, r.Scopes)
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

// maxOutlineShare is the most of the memory budget the outline may take.
const maxOutlineShare = 0.8

func sortRanges(rs []focus.Range) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].First < rs[j-1].First; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// lastUserText returns the text of the last user message, or "".
func lastUserText(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Text
		}
	}
	return ""
}

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
	for i := len(r.Messages) - 1; i >= tailFrom && i >= len(r.Messages)-4; i-- {
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

// render writes the memory text of the entries, filtering verbatim blocks
// by the policy for a caller holding scopes (gists are built from redacted
// text and need no filtering).
func (e *Engine) render(c *mctx, entries []focus.Entry, scopes []string) (string, []EntryInfo, []policy.Hit) {
	mw := memoryWriter{e: e, scopes: scopes}
	for _, en := range entries {
		mw.entry(en)
	}
	return mw.finish()
}

// renderZones writes the memory text of an outline-mode window: the
// outline, then the focus zone's entries, each outline entry's details
// introduced by a header naming its span; elided entries are skipped.
func (e *Engine) renderZones(c *mctx, res focus.Result, scopes []string) (string, []EntryInfo, []policy.Hit) {
	mw := memoryWriter{e: e, scopes: scopes}
	for _, en := range res.Outline {
		mw.entry(en)
	}
	var group *tree.Node
	pending := false // group's header is not written yet
	for _, en := range res.Entries {
		if en.Tail || en.Refines == nil || en.Detail == focus.Elided {
			continue
		}
		if en.Refines != group {
			group = en.Refines
			pending = true
		}
		// A block that goes on with the message the previous group ended
		// with is written on its line, so that a message split across two
		// spans still reads as one; its group's header comes after it.
		if pending && !continues(mw.prev, en.Node) {
			mw.line(detailsHeader(group))
			pending = false
		}
		mw.entry(en)
	}
	return mw.finish()
}

// memoryWriter writes memory text entry by entry.
type memoryWriter struct {
	e      *Engine
	scopes []string
	sb     strings.Builder
	infos  []EntryInfo
	hits   []policy.Hit
	prev   *tree.Node // the last block written, for continuations
}

// start opens the text or the next line; cont continues the current line.
func (w *memoryWriter) start(cont bool) {
	if w.sb.Len() == 0 {
		w.sb.WriteString(w.e.preamble())
	} else if !cont {
		w.sb.WriteByte('\n')
	}
}

// line writes a line of its own.
func (w *memoryWriter) line(s string) {
	w.start(false)
	w.sb.WriteString(s)
	w.prev = nil
}

func (w *memoryWriter) entry(en focus.Entry) {
	if en.Tail {
		w.prev = nil
		return
	}
	n := en.Node
	w.infos = append(w.infos, EntryInfo{Level: n.Level, Index: n.Index, First: n.First, Last: n.Last, Detail: en.Detail.String(), Tokens: en.Cost})
	text := n.Text
	if en.Detail == focus.Verbatim && len(n.Spans) > 0 {
		out, excluded, h := w.e.opts.Policy.Apply(n.Text, toPolicySpans(n.Spans), w.scopes)
		w.hits = append(w.hits, h...)
		if excluded {
			w.prev = nil // the block is left out; what follows restarts with a header
			return
		}
		text = out
	}
	cont := en.Detail == focus.Verbatim && continues(w.prev, n)
	w.start(cont)
	sb := &w.sb
	switch en.Detail {
	case focus.Verbatim:
		if cont {
			sb.WriteString(text)
		} else {
			sb.WriteString(blockHeader(n.Time, n.Role))
			if n.Part > 0 {
				sb.WriteString("…")
			}
			sb.WriteString(strings.TrimLeft(text, " "))
		}
		w.prev = n
	case focus.Full:
		sb.WriteString(gistHeader(n.Time, n.TimeEnd))
		sb.WriteString(n.Text)
		w.prev = nil
	case focus.Short:
		sb.WriteString("~ ")
		sb.WriteString(n.Short)
		w.prev = nil
	}
}

func (w *memoryWriter) finish() (string, []EntryInfo, []policy.Hit) {
	if w.sb.Len() == 0 {
		return "", nil, w.hits
	}
	w.sb.WriteByte('\n')
	w.sb.WriteString(Closing)
	return w.sb.String(), w.infos, w.hits
}

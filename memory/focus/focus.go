// Package focus is the focus allocator: given the gist tree, block
// relevance scores and a token budget, it chooses the working window's
// memory entries. It starts from the coarsest cover of the timeline,
// expands the most relevant nodes to full detail, collapses low-utility
// gists to headlines to make room, and never exceeds the budget.
package focus

import (
	"container/heap"
	"slices"
	"sort"
	"sync"

	"github.com/megacontext/megacontext/memory/tree"
)

// Detail is how an entry is rendered.
type Detail uint8

// Details, from most to least expensive.
const (
	// Verbatim renders a block's raw text.
	Verbatim Detail = iota
	// Full renders a gist node's full gist.
	Full
	// Short renders a gist node's headline.
	Short
	// Elided renders nothing: in outline mode's focus zone, an entry that
	// the outline line of the entry it refines already summarizes.
	Elided
)

func (d Detail) String() string {
	switch d {
	case Verbatim:
		return "verbatim"
	case Full:
		return "gist"
	case Elided:
		return "elided"
	default:
		return "headline"
	}
}

// Reason says why an entry is in the window.
type Reason uint8

// Reasons.
const (
	// Cover: part of the coarsest cover of the timeline (outline mode's
	// outline), whatever the question.
	Cover Reason = iota
	// Relevant: revealed by a relevance expansion (Entry.Round says which).
	Relevant
	// Hysteresis: re-expanded because the previous window had it expanded.
	Hysteresis
	// Weak: a weak match shown with what budget was left.
	Weak
	// Recent: the newest history detailed with what budget was left.
	Recent
	// Pinned: kept in every window by a pin (set by the caller on the Tail
	// entries of the blocks it pinned).
	Pinned
	// Context: around a match (the rest of its message, or a level opened
	// on the way to a weak match) with what budget was left.
	Context
)

func (r Reason) String() string {
	switch r {
	case Relevant:
		return "expanded"
	case Hysteresis:
		return "hysteresis"
	case Weak:
		return "weak match"
	case Recent:
		return "recent"
	case Pinned:
		return "pinned"
	case Context:
		return "context"
	default:
		return "outline"
	}
}

// Range is an inclusive block range.
type Range struct{ First, Last int }

// Entry is one element of a window: a tree node at some detail, or a range
// of blocks the caller renders verbatim in the recent tail.
type Entry struct {
	Node   *tree.Node
	Detail Detail
	// Tail marks blocks that belong to the verbatim tail; Node is nil and
	// First/Last give the range.
	Tail        bool
	First, Last int
	// Cost is the entry's token cost including render overhead (0 for tail).
	Cost int
	// Refines is set in outline mode (Input.OutlineBudget > 0) on the
	// entries of the focus zone: the node of the outline entry they detail.
	// Only focus entries are Elided.
	Refines *tree.Node
	// Why says why the entry is in the window; Round is the relevance round
	// (1, 2, ...) of a Relevant entry, and Score the node's relevance when
	// the entry was made (0 for Cover and Recent entries).
	Why   Reason
	Round int
	Score float64
	prev  *tree.Node
}

// Input is what the allocator works from.
type Input struct {
	Tree *tree.Tree
	// Tail lists sorted, disjoint block ranges rendered by the caller in the
	// verbatim tail; memory entries never cover them.
	Tail []Range
	// Budget is the token budget of the memory entries.
	Budget int
	// Scores is the relevance of blocks (absent means 0).
	Scores map[int]float64
	// Overhead returns the tokens the renderer adds to an entry; prev is the
	// entry's preceding sibling when both come from one expansion (the
	// renderer may join them), else nil.
	Overhead func(n *tree.Node, d Detail, prev *tree.Node) int
	// Sticky reports nodes expanded in the previous window (hysteresis).
	Sticky func(n *tree.Node) bool
	// Refocus, when set, is called after each expansion round with the
	// round's number (1, 2, ...) and the blocks it revealed verbatim, and
	// returns updated block scores for the next round (iterative refocus).
	// Returning nil ends refocusing. Outline mode may fit the window more
	// than once (the outline yielding to the details), and each fitting
	// refocuses from round 1 again: a caller that keeps state from one
	// round to the next starts it over at round 1.
	Refocus func(round int, revealed []*tree.Node) map[int]float64
	// Rounds is the number of relevance rounds (at least 1).
	Rounds int
	// MinRelevance is the least relevance, as a share of the best block's,
	// that earns an expansion in a relevance round; weaker matches only get
	// what budget is left after hysteresis.
	MinRelevance float64
	// RoundShare is the share of the free budget each round but the last
	// may spend, so that later rounds have room for what refocusing finds;
	// 0 uses 0.6.
	RoundShare float64
	// OutlineBudget, when positive, selects outline mode: the window is a
	// query-independent outline of the timeline (the coarsest cover fitted
	// to OutlineBudget, then the newest history detailed, no relevance and
	// no hysteresis) followed by a focus zone that details some outline
	// entries for the query. Refining an outline entry keeps its line and
	// adds Details(n) plus its children's cost; expanding a focus entry
	// replaces it by its children. Budget bounds both zones together.
	OutlineBudget int
	// OutlineStep quantizes the outline's fitting: the number of oldest
	// gists collapsed to headlines is a multiple of it, so that the collapse
	// point moves in steps as history grows (0 or 1: no quantization).
	OutlineStep int
	// Details returns the tokens of the header that introduces the focus
	// zone's refinement of outline entry n (outline mode).
	Details func(n *tree.Node) int
	// Headless, in outline mode, puts the focus zone's details under no
	// header naming the outline entry they refine: Details is not charged,
	// and Result.Headless tells the renderer. false (the default): each
	// refined entry's details come under its header.
	Headless bool
	// Follow, in headless outline mode, is the render overhead of the
	// focus zone's block n written right after the zone's block prev (nil:
	// n is the first the zone writes), whatever lies between them in the
	// timeline: a renderer that writes once what consecutive details share
	// (their time) charges it here, and each block shown changes the
	// charge of the shown block after it. nil: Overhead, with prev only for
	// a block that continues prev's message under the same outline entry.
	Follow func(prev, n *tree.Node) int
	// DetailFloor, in outline mode, is the budget the focus zone may claim
	// before the outline gets its share: up to it, the outline yields to
	// the question's matches (collapsing, then eliding its oldest entries),
	// so that the window holds at least what plain retrieval would fit in
	// that much budget. 0: the outline keeps OutlineBudget.
	DetailFloor int
	// OutlineQuantum, in outline mode, rounds the outline's budget down to
	// a multiple of it whenever the focus zone changes that budget, so that
	// the outline changes in steps (0 or 1: no rounding).
	OutlineQuantum int
	// Unit, in outline mode, returns the blocks shown together with block b
	// (b among them): the rest of the sentences b holds, so that a
	// statement is never shown cut. nil: each block alone.
	Unit func(b int) Range
	// Context, in outline mode, returns the wider span around block b that
	// budget left after every match goes to (the rest of its message, say).
	// nil: none.
	Context func(b int) Range
}

// Result is the allocator's window.
type Result struct {
	// Entries tile blocks [Cut, Len) oldest first (tail entries included).
	Entries []Entry
	// Cost is the summed cost of the memory entries.
	Cost int
	// Cut is the first retained block; blocks before it were omitted to fit.
	Cut int
	// Expanded counts expansions performed.
	Expanded int
	// Collapsed counts gists rendered as headlines.
	Collapsed int
	// Outline, in outline mode, is the outline as rendered: it tiles
	// [Cut, Len) like Entries. Entries are then the effective window, the
	// outline with the focus zone's refinements applied: entries whose
	// Refines is nil are outline entries, the others render in the focus
	// zone. Cost counts the whole outline, every focus entry and one Details
	// header per refined outline entry.
	Outline []Entry
	// OutlineCost is the outline's share of Cost.
	OutlineCost int
	// Headless, in outline mode, says the focus zone's details go under
	// no header of the outline entry they refine (Input.Headless).
	Headless bool
	// Followed, in outline mode, says the focus zone was charged by
	// Input.Follow: the renderer writes each block as Follow priced it.
	Followed bool
	// OutlineBudget is the budget the outline was fitted to: at most
	// Input.OutlineBudget, less when the focus zone needed the room, more
	// when the question matched too little to use it.
	OutlineBudget int
	// Omitted counts blocks that neither the outline nor the focus zone
	// shows in any form (outline mode: the outline's elided entries, less
	// the blocks shown from them; otherwise the blocks before Cut).
	Omitted int
}

type key struct{ level, index int }

type allocator struct {
	in Input
	t  *tree.Tree
	// rel holds each node's relevance by level and index (setScores): the
	// best score of the blocks it covers, zero but for the nodes in
	// relSet; maxRel is the best of all.
	rel     [][]float64
	relSet  []key
	maxRel  float64
	entries []Entry
	cost    int
	done    map[key]bool
	result  Result
	// zoned: outline mode's focus allocation (entries with Refines == nil
	// are outline entries, refined additively and never collapsed).
	zoned bool
	// step quantizes fit's collapses (outline building).
	step int
	// why and round stamp the entries an expansion makes (splice): the
	// phase the allocator is in.
	why   Reason
	round int
	// elide makes fit elide the oldest entries instead of cutting them
	// (outline building: the focus zone can still detail them).
	elide bool
}

// Allocate computes the window. It is deterministic for equal inputs.
func Allocate(in Input) Result {
	if in.Overhead == nil {
		in.Overhead = func(*tree.Node, Detail, *tree.Node) int { return 0 }
	}
	if in.Rounds < 1 {
		in.Rounds = 1
	}
	if in.RoundShare <= 0 || in.RoundShare > 1 {
		in.RoundShare = 0.6
	}
	if in.OutlineBudget > 0 {
		return allocateZoned(in)
	}
	a := &allocator{in: in, t: in.Tree, done: map[key]bool{}}
	a.setScores(in.Scores)
	a.initialCover()
	a.fit()
	a.relevanceRounds()
	a.restoreSticky()
	a.fillByRecency()
	defer a.release()
	return a.finish()
}

// relevanceRounds runs the relevance expansion rounds with refocusing.
func (a *allocator) relevanceRounds() {
	in := a.in
	for round := 0; round < in.Rounds; round++ {
		a.why, a.round = Relevant, round+1
		limit := in.Budget
		if round+1 < in.Rounds && in.Refocus != nil {
			limit = a.cost + int(float64(in.Budget-a.cost)*in.RoundShare)
		}
		revealed := a.expandRelevant(limit)
		if round+1 == in.Rounds || in.Refocus == nil || len(revealed) == 0 {
			break
		}
		// Most relevant first, so the caller can refocus on the best of them.
		sort.SliceStable(revealed, func(i, j int) bool { return a.relevance(revealed[i]) > a.relevance(revealed[j]) })
		scores := in.Refocus(round+1, revealed)
		if scores == nil {
			break
		}
		a.setScores(scores)
	}
}

func (a *allocator) finish() Result {
	a.result.Entries = a.entries
	a.result.Cost = a.cost
	if !a.zoned {
		a.result.Omitted = a.result.Cut
	}
	for _, e := range a.entries {
		if !e.Tail && e.Refines == nil && e.Detail == Short {
			a.result.Collapsed++
		}
	}
	return a.result
}

// setScores computes node relevance: the maximum block score in its span.
func (a *allocator) setScores(scores map[int]float64) {
	// Arrays by level, not a map: relevance is read for every node the
	// allocator weighs, and a long history's question scores thousands.
	if a.rel == nil {
		rt := relPool.Get().(*relTable)
		a.rel, a.relSet = rt.rel, rt.set
	}
	for _, k := range a.relSet {
		a.rel[k.level][k.index] = 0
	}
	a.relSet = a.relSet[:0]
	for l := len(a.rel); l < a.t.Height(); l++ {
		a.rel = append(a.rel, nil)
	}
	for l := range a.rel {
		if n := a.t.LevelLen(l); len(a.rel[l]) < n {
			a.rel[l] = append(a.rel[l], make([]float64, n-len(a.rel[l]))...)
		}
	}
	a.maxRel = 0
	f := a.t.Fanout()
	for b, s := range scores {
		if s <= 0 || b < 0 || b >= a.t.Len() {
			continue
		}
		if s > a.maxRel {
			a.maxRel = s
		}
		// The block and its ancestors (Parent's), by index: reading each
		// node would cost a cache miss.
		for l, i := 0, b; l < len(a.rel) && i < a.t.LevelLen(l); l, i = l+1, i/f {
			r := &a.rel[l][i]
			if *r >= s {
				break // ancestors already hold at least s
			}
			if *r == 0 {
				a.relSet = append(a.relSet, key{l, i})
			}
			*r = s
		}
	}
}

// release hands a's relevance arrays, emptied, back to relPool: a is done.
func (a *allocator) release() {
	if a.rel == nil {
		return
	}
	for _, k := range a.relSet {
		a.rel[k.level][k.index] = 0
	}
	relPool.Put(&relTable{rel: a.rel, set: a.relSet[:0]})
	a.rel, a.relSet = nil, nil
}

// relTable is an allocator's relevance arrays (rel, relSet), all zero
// while in relPool.
type relTable struct {
	rel [][]float64
	set []key
}

// relPool keeps relevance arrays from one allocation to the next: a long
// history's take a third of a megabyte.
var relPool = sync.Pool{New: func() any { return new(relTable) }}

func (a *allocator) relevance(n *tree.Node) float64 {
	if n.Level >= len(a.rel) || n.Index >= len(a.rel[n.Level]) {
		return 0
	}
	return a.rel[n.Level][n.Index]
}

// shows reports whether an expansion shows child c: any match earns a gist
// its full text.
func (a *allocator) shows(c *tree.Node) bool { return a.relevance(c) > 0 }

// strong reports whether n is a strong match: at least MinRelevance of the
// best.
func (a *allocator) strong(n *tree.Node) bool {
	p := a.relevance(n)
	return p > 0 && p >= a.in.MinRelevance*a.maxRel
}

func (a *allocator) entryCost(n *tree.Node, d Detail, prev *tree.Node) int {
	c := n.Cost
	if d == Short {
		c = n.ShortCost
	}
	return c + a.in.Overhead(n, d, prev)
}

func (a *allocator) memoryEntry(n *tree.Node, d Detail, prev *tree.Node) Entry {
	return Entry{Node: n, Detail: d, First: n.First, Last: n.Last, Cost: a.entryCost(n, d, prev), prev: prev}
}

// costAt is entry e's cost at detail d: nothing when elided.
func (a *allocator) costAt(e Entry, d Detail) int {
	if d == Elided {
		return 0
	}
	return a.entryCost(e.Node, d, e.prev)
}

// collapsed is the detail a Full entry collapses to: a headline, or in
// the focus zone nothing.
func collapsed(e Entry) Detail {
	if e.Refines != nil {
		return Elided
	}
	return Short
}

// outlineEntry reports whether e is an outline entry of outline mode.
func (a *allocator) outlineEntry(e Entry) bool { return a.zoned && !e.Tail && e.Refines == nil }

// replaceDelta is the cost change of replacing entry e by entries costing
// newCost: an outline entry stays rendered, and its refinement adds a
// Details header.
func (a *allocator) replaceDelta(e Entry, newCost int) int {
	if a.outlineEntry(e) {
		return newCost + a.in.Details(e.Node)
	}
	return newCost - e.Cost
}

func (a *allocator) detailFor(n *tree.Node) Detail {
	if n.Level == 0 {
		return Verbatim
	}
	return Full
}

// initialCover tiles the timeline with the coarsest nodes that avoid the tail.
func (a *allocator) initialCover() {
	n := a.t.Len()
	pos := 0
	for _, r := range a.in.Tail {
		first, last := max(r.First, 0), min(r.Last, n-1)
		if first > last || first < pos {
			continue
		}
		a.coverSegment(pos, first)
		a.entries = append(a.entries, Entry{Tail: true, First: first, Last: last})
		pos = last + 1
	}
	a.coverSegment(pos, n)
}

func (a *allocator) coverSegment(from, to int) {
	for _, node := range a.t.Cover(from, to) {
		e := a.memoryEntry(node, a.detailFor(node), nil)
		a.entries = append(a.entries, e)
		a.cost += e.Cost
	}
}

// fit collapses the least useful gists to headlines, then drops the oldest
// entries, until the memory fits the budget.
func (a *allocator) fit() {
	if a.cost <= a.in.Budget {
		return
	}
	a.collapse(a.cost-a.in.Budget, -1, -1)
	if a.elide {
		// The outline elides its oldest entries: they cost nothing and stay
		// in place, so that the focus zone can still detail them.
		for i := 0; a.cost > a.in.Budget && i < len(a.entries); i++ {
			if e := &a.entries[i]; !e.Tail && e.Detail != Elided {
				a.cost -= e.Cost
				e.Detail, e.Cost = Elided, 0
			}
		}
		return
	}
	// Drop the oldest entries. Tail ranges passed on the way are dropped from
	// the list too (the caller renders them in the tail regardless), so the
	// entries always tile [Cut, Len).
	drop := 0
	for a.cost > a.in.Budget && drop < len(a.entries) {
		e := a.entries[drop]
		a.cost -= e.Cost
		a.result.Cut = e.Last + 1
		drop++
	}
	for drop < len(a.entries) && a.entries[drop].Tail {
		a.result.Cut = a.entries[drop].Last + 1
		drop++
	}
	a.entries = append([]Entry(nil), a.entries[drop:]...)
}

// collapse turns Full gists into headlines until need tokens are freed or nothing below relevance ceiling
// remains (ceiling < 0: no ceiling). skip is an entry index to leave alone.
// It returns the tokens freed.
func (a *allocator) collapse(need int, ceiling float64, skip int) int {
	type cand struct {
		i    int
		rel  float64
		save int
	}
	var cands []cand
	for i, e := range a.entries {
		if i == skip || e.Tail || e.Detail != Full || a.outlineEntry(e) {
			continue
		}
		r := a.relevance(e.Node)
		if ceiling >= 0 && r >= ceiling {
			continue
		}
		save := e.Cost - a.costAt(e, collapsed(e))
		if save > 0 {
			cands = append(cands, cand{i, r, save})
		}
	}
	// Fitting the base cover collapses oldest first, whatever the query, so
	// that the cover is the same from one request to the next; making room
	// for an expansion collapses the least relevant first.
	sort.SliceStable(cands, func(x, y int) bool {
		if ceiling >= 0 && cands[x].rel != cands[y].rel {
			return cands[x].rel < cands[y].rel
		}
		return cands[x].i < cands[y].i
	})
	avail := 0
	for _, c := range cands {
		avail += c.save
	}
	if ceiling >= 0 && avail < need {
		return 0 // not enough to make the expansion fit: change nothing
	}
	freed := 0
	for k, c := range cands {
		// Fitting the outline collapses a multiple of step gists, so that
		// the collapse point moves in steps as history grows.
		if freed >= need && (ceiling >= 0 || a.step <= 1 || k%a.step == 0) {
			break
		}
		e := &a.entries[c.i]
		e.Detail = collapsed(*e)
		e.Cost = a.costAt(*e, e.Detail)
		a.cost -= c.save
		freed += c.save
	}
	return freed
}

// expandRelevant greedily expands relevant nodes while the cost stays
// within limit and returns the blocks it revealed verbatim.
func (a *allocator) expandRelevant(limit int) []*tree.Node {
	h := &nodeHeap{}
	push := func(n *tree.Node) {
		if n.Level == 0 || a.done[key{n.Level, n.Index}] {
			return
		}
		if p := a.relevance(n); p > 0 && p >= a.in.MinRelevance*a.maxRel {
			heap.Push(h, item{n: n, p: p})
		}
	}
	for _, e := range a.entries {
		if !e.Tail && e.Node.Level > 0 {
			push(e.Node)
		}
	}
	var revealed []*tree.Node
	for h.Len() > 0 {
		it := heap.Pop(h).(item)
		n := it.n
		k := key{n.Level, n.Index}
		if a.done[k] {
			continue
		}
		i := a.find(n)
		if i < 0 {
			continue
		}
		children := a.t.Children(n)
		repl, newCost := a.childEntries(a.entries[i], a.shows)
		delta := a.replaceDelta(a.entries[i], newCost)
		if free := limit - a.cost; delta > free {
			// Outline mode has nothing to collapse: outline entries stay,
			// and the focus zone holds no gists.
			if !a.zoned {
				a.collapse(delta-free, it.p, i)
			}
			if delta > limit-a.cost {
				continue
			}
		}
		a.done[k] = true
		a.splice(i, repl)
		a.result.Expanded++
		for _, c := range children {
			if c.Level == 0 {
				revealed = append(revealed, c)
			} else {
				push(c)
			}
		}
	}
	return revealed
}

// restoreSticky spends what budget relevance left on re-expanding the
// nodes the previous window had expanded (hysteresis), so that consecutive
// windows differ only where relevance moved: the upstream's prompt cache
// and the model's view of old history stay stable.
func (a *allocator) restoreSticky() {
	if a.in.Sticky == nil {
		return
	}
	a.why, a.round = Hysteresis, 0
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(a.entries); i++ {
			e := a.entries[i]
			if e.Tail || e.Node.Level == 0 || !a.in.Sticky(e.Node) {
				continue
			}
			repl, newCost := a.childEntries(e, func(c *tree.Node) bool { return a.shows(c) || a.in.Sticky(c) })
			if a.cost+a.replaceDelta(e, newCost) > a.in.Budget {
				continue
			}
			a.splice(i, repl)
			a.result.Expanded++
			changed = true
		}
	}
}

// fillByRecency spends what budget is left on detail for the newest
// history: headlines become gists, then the newest gists are expanded.
func (a *allocator) fillByRecency() {
	a.why, a.round = Recent, 0
	for i := len(a.entries) - 1; i >= 0; i-- {
		e := a.entries[i]
		if e.Tail || e.Detail != Short {
			continue
		}
		full := a.entryCost(e.Node, Full, e.prev)
		if a.cost-e.Cost+full <= a.in.Budget {
			a.cost += full - e.Cost
			a.entries[i].Detail = Full
			a.entries[i].Cost = full
		}
	}
	for i := len(a.entries) - 1; i >= 0; i-- {
		e := a.entries[i]
		if e.Tail || e.Node.Level == 0 {
			continue
		}
		repl, newCost := a.childEntries(e, func(*tree.Node) bool { return true })
		if a.cost+a.replaceDelta(e, newCost) > a.in.Budget {
			break // keep the window contiguous in detail: stop at the first miss
		}
		a.splice(i, repl)
		a.result.Expanded++
		i += len(repl) // revisit the new children, newest first
	}
}

// expandRecent is fillByRecency without its first pass: the headlines fit
// left stay headlines (so that a quantized collapse point stays put), and
// what is left details the newest history.
func (a *allocator) expandRecent() {
	a.why, a.round = Recent, 0
	for i := len(a.entries) - 1; i >= 0; i-- {
		e := a.entries[i]
		if e.Tail || e.Node.Level == 0 {
			continue
		}
		repl, newCost := a.childEntries(e, func(*tree.Node) bool { return true })
		if a.cost+a.replaceDelta(e, newCost) > a.in.Budget {
			break
		}
		a.splice(i, repl)
		a.result.Expanded++
		i += len(repl)
	}
}

// childEntries returns the entries that replace e when it is expanded, and
// their cost: blocks verbatim, gists in full when full(child) holds, else
// as headlines. In outline mode they refine e's outline entry, and in that
// focus zone a gist adds little to the outline line above it: gists are
// elided (until expanded in turn), and so are blocks full rejects.
func (a *allocator) childEntries(e Entry, full func(*tree.Node) bool) ([]Entry, int) {
	children := a.t.Children(e.Node)
	refines := e.Refines
	if a.outlineEntry(e) {
		refines = e.Node
	}
	repl := make([]Entry, len(children))
	cost := 0
	for j, c := range children {
		d := a.detailFor(c)
		switch {
		case refines != nil && (d == Full || !full(c)):
			d = Elided
		case d == Full && !full(c):
			d = Short
		}
		prev := prevSibling(children, j)
		if j > 0 && repl[j-1].Detail == Elided {
			prev = nil // the renderer restarts after what it skipped
		}
		repl[j] = Entry{Node: c, Detail: d, First: c.First, Last: c.Last, Refines: refines, prev: prev}
		repl[j].Cost = a.costAt(repl[j], d)
		cost += repl[j].Cost
	}
	return repl, cost
}

func prevSibling(children []*tree.Node, j int) *tree.Node {
	if j == 0 {
		return nil
	}
	return children[j-1]
}

// splice replaces entry i by repl and updates the cost.
func (a *allocator) splice(i int, repl []Entry) {
	old := a.entries[i]
	for j := range repl {
		repl[j].Why, repl[j].Round = a.why, a.round
		if a.why != Recent {
			repl[j].Score = a.relevance(repl[j].Node)
		}
		if a.why == Weak && repl[j].Score <= 0 {
			repl[j].Why = Context // opened on the way to a weak match
		}
	}
	sum := 0
	for _, e := range repl {
		sum += e.Cost
	}
	a.cost += a.replaceDelta(old, sum)
	a.entries = slices.Replace(a.entries, i, i+1, repl...)
}

// find returns the index of the memory entry holding n, or -1.
func (a *allocator) find(n *tree.Node) int {
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].Last >= n.First })
	if i < len(a.entries) && !a.entries[i].Tail && a.entries[i].Node == n {
		return i
	}
	return -1
}

type item struct {
	n *tree.Node
	p float64
}

type nodeHeap []item

func (h nodeHeap) Len() int { return len(h) }
func (h nodeHeap) Less(i, j int) bool {
	if h[i].p != h[j].p {
		return h[i].p > h[j].p
	}
	if h[i].n.Last != h[j].n.Last {
		return h[i].n.Last > h[j].n.Last
	}
	return h[i].n.Level > h[j].n.Level
}
func (h nodeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *nodeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

package focus

import (
	"cmp"
	"slices"
	"sort"

	"github.com/megacontext/megacontext/memory/tree"
)

// Outline mode. The window is an outline of the whole timeline (the
// coarsest cover fitted to a budget, its newest history detailed: no
// relevance, no hysteresis) followed by a focus zone that shows the
// question's matching blocks verbatim, each under a header naming the
// outline entry it details.
//
// The focus zone is filled like plain retrieval fills its window, best
// match first, whatever the relevance of the best: up to DetailFloor, the
// outline yields to it (the outline's budget shrinks in OutlineQuantum
// steps, its gists collapse to headlines, then its oldest entries are
// elided: they stay in place, cost nothing, and the focus zone can still
// detail them). What the outline and the focus zone leave goes to the
// weaker matches, then to what the previous window showed (hysteresis),
// and when nothing is left to show, to the outline itself.

// zoneTries bounds how many times the outline is refitted to make room for
// the focus zone.
const zoneTries = 4

// allocateZoned is Allocate in outline mode.
func allocateZoned(in Input) Result {
	if in.Follow != nil {
		in.Headless = true
	}
	if in.Details == nil || in.Headless {
		in.Details = func(*tree.Node) int { return 0 }
	}
	if in.Unit == nil {
		in.Unit = func(b int) Range { return Range{b, b} }
	}
	q := max(1, in.OutlineQuantum)
	ob := min(in.OutlineBudget, in.Budget)
	first := (&allocator{in: in, t: in.Tree}).rankBlocks(in.Scores)
	if d := focusDemand(in, first); d > 0 && in.Budget-d < ob {
		ob = max(0, in.Budget-d) / q * q
	}
	var best *zone
	var fitted []*zone
	defer func() {
		for _, z := range fitted {
			z.a.release()
		}
	}()
	for try := 0; try < zoneTries; try++ {
		z := fitZones(in, ob, first)
		fitted = append(fitted, z)
		if best != nil && !z.better(best) {
			break // refitting did not help: keep the better window
		}
		best = z
		if z.shortfall == 0 || ob == 0 {
			break
		}
		// The outline yields to the matches the focus zone could not fit.
		next := max(0, ob-z.shortfall) / q * q
		if next == ob {
			next = max(0, ob-q)
		}
		ob = next
	}
	return best.a.finish()
}

// better reports whether z is a better window than y: it lacks less of
// what retrieval would show, or shows more matches, or as many and spends
// more.
func (z *zone) better(y *zone) bool {
	if z.shortfall != y.shortfall {
		return z.shortfall < y.shortfall
	}
	if z.matched != y.matched {
		return z.matched > y.matched
	}
	return z.a.cost > y.a.cost
}

// zone is one fitting of outline mode: the allocator holding the window,
// the tokens the focus zone lacked to show what retrieval would, and
// whether every match was shown.
type zone struct {
	a         *allocator
	shortfall int
	// matched counts the first round's matches shown.
	matched int
}

// focusDemand estimates the focus zone's needs up to DetailFloor: the cost
// of the best matches' units, each under a header of its own.
func focusDemand(in Input, ranked []int) int {
	if in.DetailFloor <= 0 || len(ranked) == 0 {
		return 0
	}
	a := &allocator{in: in, t: in.Tree}
	seen := map[int]bool{}
	need := 0
	for _, b := range ranked {
		u := in.Unit(b)
		first := true
		for x := u.First; x <= u.Last; x++ {
			if seen[x] || a.inTail(x) {
				continue
			}
			seen[x] = true
			n := a.t.Block(x)
			need += a.entryCost(n, Verbatim, nil)
			if first {
				need += in.Details(n)
				first = false
			}
		}
		if need >= in.DetailFloor {
			return in.DetailFloor
		}
	}
	return need
}

// fitZones builds the outline within budget ob, then the focus zone;
// first ranks the matches.
func fitZones(in Input, ob int, first []int) *zone {
	oin := in
	oin.Budget = min(ob, in.Budget)
	oin.Scores, oin.Sticky, oin.Refocus = nil, nil, nil
	o := &allocator{in: oin, t: in.Tree, done: map[key]bool{}, step: max(1, in.OutlineStep), elide: true}
	o.initialCover()
	o.fit()
	o.expandRecent()
	a := &allocator{in: in, t: in.Tree, done: map[key]bool{}, zoned: true}
	a.result.Outline = o.entries
	a.result.OutlineCost = o.cost
	a.result.OutlineBudget = oin.Budget
	a.result.Headless = in.Headless
	a.result.Followed = in.Follow != nil
	a.result.Expanded = o.result.Expanded
	a.entries = append([]Entry(nil), o.entries...)
	a.cost = o.cost
	z := &zone{a: a}
	z.details(first)
	a.prune()
	a.result.Omitted = a.omitted()
	return z
}

// details fills the focus zone: the question's matches best first (the
// first round's with a share of the budget when refocusing follows), the
// rounds refocusing finds, the rest of the first round's, then what the
// previous window showed.
func (z *zone) details(first []int) {
	a, in := z.a, z.a.in
	a.setScores(in.Scores)
	// The best match may take the whole budget; the rest of the first
	// round, in rank order, leaves a share of it to the rounds refocusing
	// finds.
	refocusing := in.Rounds > 1 && in.Refocus != nil
	a.why, a.round = Relevant, 1
	limit := -1 // the first round's limit after the best match
	var revealed []*tree.Node
	for i := range first {
		l := in.Budget
		if refocusing && len(revealed) > 0 {
			if limit < 0 {
				limit = a.cost + int(float64(in.Budget-a.cost)*in.RoundShare)
			}
			l = limit
		}
		revealed = append(revealed, z.showAll(first[i:i+1], l)...)
	}
	// The outline may already show a strong match verbatim (its newest
	// history): it counts as revealed for refocusing.
	for _, e := range a.entries {
		if a.outlineEntry(e) && e.Node.Level == 0 && e.Detail == Verbatim && a.strong(e.Node) {
			revealed = append(revealed, e.Node)
		}
	}
	for round := 1; round < in.Rounds && in.Refocus != nil && len(revealed) > 0; round++ {
		sort.SliceStable(revealed, func(i, j int) bool { return a.relevance(revealed[i]) > a.relevance(revealed[j]) })
		scores := in.Refocus(round, revealed)
		if scores == nil {
			break
		}
		limit := in.Budget
		if round+1 < in.Rounds {
			limit = a.cost + int(float64(in.Budget-a.cost)*in.RoundShare)
		}
		a.setScores(scores)
		a.why, a.round = Relevant, round+1
		rb := a.rankBlocks(scores)
		// The round's best match not shown yet may take the whole budget,
		// as the question's best does: the hop is what the round is for.
		i := 0
		for i < len(rb) && a.shownOrTail(rb[i]) {
			i++
		}
		if i < len(rb) && a.strong(a.t.Block(rb[i])) {
			i++
		}
		revealed = append(z.showAll(rb[:i], in.Budget), z.showAll(rb[i:], limit)...)
	}
	// The first round's weaker matches get what is left.
	a.setScores(in.Scores)
	a.why, a.round = Weak, 0
	z.showAll(first, in.Budget)
	for _, b := range first {
		if a.shownOrTail(b) {
			z.matched++
		}
	}
	// Hysteresis: what the previous window showed, with what is still left.
	a.why = Hysteresis
	if in.Sticky != nil {
		var prev []int
		for _, e := range a.entries {
			if !e.Tail && e.Node.Level > 0 && in.Sticky(e.Node) {
				prev = a.stickyBlocks(e.Node, prev)
			}
		}
		z.showAll(prev, in.Budget)
	}
	// Then the context of the matches, best match first.
	a.why = Context
	if in.Context != nil {
		for _, b := range first {
			c := in.Context(b)
			for x := c.First; x <= c.Last; x++ {
				if !a.shownOrTail(x) {
					a.showUnit(Range{x, x}, in.Budget)
				}
			}
		}
	}
	// And what is still left details the newest history the outline does
	// not quote, newest first, until a block does not fit: the outline
	// before it stays as it is, so the prompt's prefix does too.
	a.why = Recent
	for b := a.t.Len() - 1; b >= 0; b-- {
		if a.shownOrTail(b) {
			continue
		}
		if i := a.covering(b); a.entries[i].Refines == nil && a.entries[i].Node.Level == 0 {
			continue // an elided outline block
		}
		if ok, _ := a.showUnit(Range{b, b}, in.Budget); !ok {
			break
		}
	}
}

// stickyBlocks appends the sticky blocks under sticky node n.
func (a *allocator) stickyBlocks(n *tree.Node, out []int) []int {
	for _, c := range a.t.Children(n) {
		if !a.in.Sticky(c) {
			continue
		}
		if c.Level == 0 {
			out = append(out, c.Index)
		} else {
			out = a.stickyBlocks(c, out)
		}
	}
	return out
}

// rankBlocks returns the blocks with a positive score outside the tail,
// best first, the newer first on ties (an update beats what it replaced).
func (a *allocator) rankBlocks(scores map[int]float64) []int {
	type bs struct {
		b int
		s float64
	}
	// Sorted with their scores at hand, not looked up at each comparison.
	all := make([]bs, 0, len(scores))
	for b, s := range scores {
		if s > 0 && b >= 0 && b < a.t.Len() && !a.inTail(b) {
			all = append(all, bs{b, s})
		}
	}
	slices.SortFunc(all, func(x, y bs) int {
		if c := cmp.Compare(y.s, x.s); c != 0 {
			return c
		}
		return cmp.Compare(y.b, x.b)
	})
	out := make([]int, len(all))
	for i, x := range all {
		out[i] = x.b
	}
	return out
}

// showAll shows the unit of each block in order while the cost stays
// within limit, and returns the strong matches it showed or found shown. A unit that does
// not fit the whole budget while the focus zone holds less than
// DetailFloor is a shortfall: the outline should yield.
func (z *zone) showAll(blocks []int, limit int) []*tree.Node {
	a := z.a
	var revealed []*tree.Node
	for _, b := range blocks {
		if free := limit - a.cost; free <= 0 {
			break
		} else if a.shownOrTail(b) {
			// Shown already (by an earlier round, or the outline's newest
			// history): still this round's match, which the next hop may
			// lead on from.
			if a.strong(a.t.Block(b)) && !a.inTail(b) {
				revealed = append(revealed, a.t.Block(b))
			}
			continue
		} else if a.t.Block(b).Cost > free {
			continue // its unit costs at least its own text
		}
		u := a.in.Unit(b)
		u.First, u.Last = min(u.First, b), max(u.Last, b)
		ok, short := a.showUnit(u, limit)
		if !ok {
			if limit >= a.in.Budget && a.cost-a.result.OutlineCost < a.in.DetailFloor {
				z.shortfall = max(z.shortfall, short)
			}
			continue
		}
		if a.strong(a.t.Block(b)) {
			revealed = append(revealed, a.t.Block(b))
		}
	}
	return revealed
}

// showUnit shows the blocks of u verbatim in the focus zone if that fits
// within limit; otherwise it changes nothing and returns how many tokens
// were missing.
func (a *allocator) showUnit(u Range, limit int) (ok bool, short int) {
	need := a.unitCost(u)
	if a.cost+need > limit {
		return false, a.cost + need - limit
	}
	for x := u.First; x <= u.Last; x++ {
		if !a.shownOrTail(x) {
			a.showBlock(x)
		}
	}
	return true, 0
}

// unitCost is what showing the blocks of u costs: each block verbatim
// (joined to the block before it when that one shows in the same group),
// and a header for each outline entry they are the first to refine. The
// expansions down to them cost nothing: the focus zone elides what it
// does not show.
func (a *allocator) unitCost(u Range) int {
	if a.in.Follow != nil {
		return a.followCost(u)
	}
	cost := 0
	var headed []*tree.Node // outline entries this unit refines first
	lastGroup, last := (*tree.Node)(nil), -2
	for x := u.First; x <= u.Last; x++ {
		if a.shownOrTail(x) {
			continue
		}
		e := a.entries[a.covering(x)]
		group := e.Refines
		if group == nil {
			if e.Node.Level == 0 {
				continue // an elided outline block: never shown
			}
			group = e.Node
			if !slices.Contains(headed, group) {
				headed = append(headed, group)
				cost += a.in.Details(group)
			}
		}
		n := a.t.Block(x)
		var prev *tree.Node
		if x > 0 {
			p := a.t.Block(x - 1)
			joined := last == x-1 && lastGroup == group
			if !joined {
				if i := a.covering(x - 1); i >= 0 {
					pe := a.entries[i]
					joined = pe.Node.Level == 0 && pe.Detail == Verbatim && pe.Refines == group
				}
			}
			if joined && continues(p, n) {
				prev = p
			}
		}
		cost += a.entryCost(n, Verbatim, prev)
		lastGroup, last = group, x
	}
	return cost
}

// showBlock expands the entries that hold block b down to b and shows it
// verbatim; it returns false when b lies in an elided outline block.
func (a *allocator) showBlock(b int) bool {
	for {
		i := a.covering(b)
		if i < 0 {
			return false
		}
		e := a.entries[i]
		if e.Node.Level == 0 {
			if e.Refines == nil {
				return false // an outline block: shown already, or elided
			}
			var prev *tree.Node
			if i > 0 {
				if p := a.entries[i-1]; !p.Tail && p.Refines == e.Refines && p.Detail == Verbatim && continues(p.Node, e.Node) {
					prev = p.Node
				}
			}
			e.Detail, e.prev = Verbatim, prev
			e.Cost = a.entryCost(e.Node, Verbatim, prev)
			e.Why, e.Round, e.Score = a.why, a.round, 0
			if a.why != Recent {
				e.Score = a.relevance(e.Node)
			}
			if a.why == Weak && e.Score <= 0 {
				e.Why = Context // shown to complete a weak match's sentence
			}
			if a.in.Follow != nil {
				a.follow(i, e)
				return true
			}
			a.entries[i] = e
			a.cost += e.Cost
			// The block after it, shown before it was, now goes on with
			// it on its line: it costs its join, not a header.
			if i+1 < len(a.entries) {
				if nx := a.entries[i+1]; !nx.Tail && nx.prev == nil && nx.Refines == e.Refines && nx.Detail == Verbatim && continues(e.Node, nx.Node) {
					a.cost -= nx.Cost
					nx.prev = e.Node
					nx.Cost = a.entryCost(nx.Node, Verbatim, e.Node)
					a.cost += nx.Cost
					a.entries[i+1] = nx
				}
			}
			return true
		}
		repl, _ := a.childEntries(e, func(*tree.Node) bool { return false })
		a.splice(i, repl)
		a.result.Expanded++
	}
}

// focusShown reports whether entry e shows a block in the focus zone.
func focusShown(e Entry) bool {
	return !e.Tail && e.Refines != nil && e.Node.Level == 0 && e.Detail == Verbatim
}

// shownBefore returns the focus zone's last block shown before entry i,
// or nil.
func (a *allocator) shownBefore(i int) *tree.Node {
	for j := i - 1; j >= 0; j-- {
		if focusShown(a.entries[j]) {
			return a.entries[j].Node
		}
	}
	return nil
}

// shownAfter returns the index of the focus zone's first block shown
// after entry i, or -1.
func (a *allocator) shownAfter(i int) int {
	for j := i + 1; j < len(a.entries); j++ {
		if focusShown(a.entries[j]) {
			return j
		}
	}
	return -1
}

// follow shows entry e, the focus zone's block at entry i, as Input.Follow
// prices it after the zone's block before it, and prices the zone's next
// block again after it.
func (a *allocator) follow(i int, e Entry) {
	e.prev = nil
	e.Cost = e.Node.Cost + a.in.Follow(a.shownBefore(i), e.Node)
	a.entries[i] = e
	a.cost += e.Cost
	if j := a.shownAfter(i); j >= 0 {
		nx := &a.entries[j]
		c := nx.Node.Cost + a.in.Follow(e.Node, nx.Node)
		a.cost += c - nx.Cost
		nx.Cost = c
	}
}

// followCost is unitCost under Input.Follow: what showing u's blocks adds
// to the window, their own costs each after the zone's block before it,
// and the change to the costs of the zone's blocks they come before.
func (a *allocator) followCost(u Range) int {
	cost := 0
	var prev *tree.Node
	started := false
	last := -1 // the entry of the last block of u counted
	for x := u.First; x <= u.Last; x++ {
		i := a.covering(x)
		if i < 0 {
			continue // in the tail
		}
		e := a.entries[i]
		shown := focusShown(e)
		if !shown && (e.Refines == nil && e.Node.Level == 0 || e.Detail == Verbatim) {
			continue // an outline block, shown or elided: never in the zone
		}
		if !started {
			prev, started = a.shownBefore(i), true
		}
		n := a.t.Block(x)
		c := n.Cost + a.in.Follow(prev, n)
		if shown {
			c -= e.Cost
		}
		cost += c
		prev, last = n, i
	}
	if last >= 0 {
		if j := a.shownAfter(last); j >= 0 {
			nx := a.entries[j]
			cost += nx.Node.Cost + a.in.Follow(prev, nx.Node) - nx.Cost
		}
	}
	return cost
}

// continues reports whether block n directly follows block prev in one
// message (the renderer then joins them).
func continues(prev, n *tree.Node) bool {
	return prev.Level == 0 && n.Level == 0 && prev.Msg == n.Msg && prev.Part+1 == n.Part
}

// covering returns the index of the memory entry whose span holds block b,
// or -1 when b lies in the tail.
func (a *allocator) covering(b int) int {
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].Last >= b })
	if i < len(a.entries) && !a.entries[i].Tail && a.entries[i].First <= b {
		return i
	}
	return -1
}

// shownOrTail reports whether block b is in the tail or already shown
// verbatim (by the outline or the focus zone).
func (a *allocator) shownOrTail(b int) bool {
	i := a.covering(b)
	if i < 0 {
		return true
	}
	e := a.entries[i]
	return e.Node.Level == 0 && e.Detail == Verbatim
}

// inTail reports whether block b lies in a tail range.
func (a *allocator) inTail(b int) bool {
	for _, r := range a.in.Tail {
		if b >= r.First && b <= r.Last {
			return true
		}
	}
	return false
}

// omitted counts the blocks of elided outline entries that the focus zone
// does not show either.
func (a *allocator) omitted() int {
	n := 0
	for _, e := range a.entries {
		if e.Tail || e.Detail != Elided {
			continue
		}
		if e.Refines == nil || a.outlineEntryOf(e.Refines).Detail == Elided {
			n += e.Last - e.First + 1
		}
	}
	return n
}

// prune undoes the focus zone's expansions that show nothing: children all
// elided become their elided parent again, and an outline entry whose
// details are all elided is no longer refined (its header is refunded).
func (a *allocator) prune() {
	for changed := true; changed; {
		changed = false
		out := a.entries[:0:0]
		for i := 0; i < len(a.entries); i++ {
			e := a.entries[i]
			if e.Tail || e.Detail != Elided || e.Refines == nil {
				out = append(out, e)
				continue
			}
			p := a.t.Parent(e.Node)
			if p == nil || e.First != p.First {
				out = append(out, e)
				continue
			}
			j := i
			for j < len(a.entries) && a.entries[j].Detail == Elided && !a.entries[j].Tail && a.entries[j].Refines != nil && a.entries[j].Last <= p.Last {
				j++
			}
			if a.entries[j-1].Last != p.Last {
				out = append(out, e)
				continue
			}
			if p == e.Refines {
				a.cost -= a.in.Details(p)
				out = append(out, a.outlineEntryOf(p))
			} else {
				out = append(out, Entry{Node: p, Detail: Elided, First: p.First, Last: p.Last, Refines: e.Refines})
			}
			a.result.Expanded--
			i = j - 1
			changed = true
		}
		a.entries = out
	}
}

// outlineEntryOf returns the outline's entry for node n.
func (a *allocator) outlineEntryOf(n *tree.Node) Entry {
	o := a.result.Outline
	i := sort.Search(len(o), func(i int) bool { return o[i].Last >= n.First })
	return o[i]
}

package memory

import (
	"encoding/json"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Focus telemetry: for every node, how often the windows showed it and
// opened it, how steadily it stayed, and how many questions reached it.
// The keeper updates it from each kept window (never on the request
// path), stores what changed every few seconds (f: records, schema.go),
// and the context loads it back with the tree.

// NodeFocus is one node's focus telemetry.
type NodeFocus struct {
	// Expanded counts the windows that opened the node: showed its span in
	// finer detail than the node itself (its children, or details below it).
	Expanded int `json:"expanded"`
	// LastExpanded is when it was last opened (Unix ms; 0: never).
	LastExpanded int64 `json:"last_expanded,omitempty"`
	// Resident counts the windows that showed the node itself (turns resident).
	Resident int `json:"resident"`
	// LastResident is when a window last showed it (Unix ms).
	LastResident int64 `json:"last_resident,omitempty"`
	// Swaps counts the consecutive windows between which the node entered
	// or left the window.
	Swaps int `json:"swaps"`
	// Questions counts the questions that showed or opened it, a question
	// asked twice in a row once (access by question).
	Questions int `json:"questions"`
	// LastQuestion is the hash of the last question that reached it.
	LastQuestion uint64 `json:"last_question,omitempty"`
}

// SwapRate is the share of its turns in or out of the window in which the
// node swapped: 0 for a node that came and stayed, 1 for one that left
// after every turn it was shown.
func (f NodeFocus) SwapRate() float64 {
	if f.Resident == 0 {
		return 0
	}
	return min(1, float64(f.Swaps)/float64(2*f.Resident))
}

// nodeKey2 names a node in the telemetry maps.
type nodeKey2 = [2]int

// focusStatBytes is the memory one node's telemetry holds (footprint),
// and focusBaseBytes what its focusBase entry adds (a shared store).
const (
	focusStatBytes = 96
	focusBaseBytes = 80
)

// observeFocus counts a kept window in its nodes' telemetry and returns
// the window's swap rate against the previous one: the share of the nodes
// in either window that are not in both. levels are the tree's level
// sizes when the window was assembled (parents are found by position, not
// through the tree, which requests may be growing). The caller holds
// c.telMu.
func (e *Engine) observeFocus(c *mctx, kw *keptWindow, levels []int, question uint64) float64 {
	ms := kw.at.UnixMilli()
	entries := windowEntries(kw.res)
	shown := make(map[nodeKey2]bool, len(entries))
	opened := map[nodeKey2]bool{}
	f := e.opts.Fanout
	parent := func(k nodeKey2) (nodeKey2, bool) {
		p := nodeKey2{k[0] + 1, k[1] / f}
		return p, p[0] < len(levels) && p[1] < levels[p[0]]
	}
	// Nodes above an outline entry were never opened: the outline stops
	// there. In outline mode an outline entry that is refined stays shown.
	above := map[nodeKey2]bool{}
	for _, en := range entries {
		if en.Why == focus.Cover {
			for p, ok := parent(nodeKey2{en.Node.Level, en.Node.Index}); ok && !above[p]; p, ok = parent(p) {
				above[p] = true
			}
		}
	}
	for _, en := range entries {
		k := nodeKey2{en.Node.Level, en.Node.Index}
		if en.Detail != focus.Elided {
			shown[k] = true
		}
		if en.Why == focus.Cover {
			continue
		}
		for p, ok := parent(k); ok && !above[p] && !opened[p]; p, ok = parent(p) {
			opened[p] = true
		}
	}
	touch := func(k nodeKey2) *NodeFocus {
		nf := c.focus[k]
		if nf == nil {
			nf = &NodeFocus{}
			c.focus[k] = nf
		}
		c.focusDirty[k] = true
		return nf
	}
	reach := func(f *NodeFocus) {
		if f.LastQuestion != question || f.Questions == 0 {
			f.Questions++
			f.LastQuestion = question
		}
	}
	for k := range shown {
		nf := touch(k)
		nf.Resident++
		nf.LastResident = ms
		reach(nf)
		if c.prevShown != nil && !c.prevShown[k] {
			nf.Swaps++
		}
	}
	for k := range opened {
		nf := touch(k)
		nf.Expanded++
		nf.LastExpanded = ms
		reach(nf)
		e.keeper.expansions.Add(1)
	}
	swapped, union := 0, len(shown)
	for k := range c.prevShown {
		if !shown[k] {
			touch(k).Swaps++
			swapped++
			union++
		}
	}
	for k := range shown {
		if c.prevShown != nil && !c.prevShown[k] {
			swapped++
		}
	}
	rate := 0.0
	if c.prevShown != nil && union > 0 {
		rate = float64(swapped) / float64(union)
	}
	e.keeper.swaps.Add(int64(swapped))
	c.prevShown = shown
	return rate
}

// windowEntries are the entries a window shows: in outline mode the
// outline and the focus zone's details, else the entries; tail entries
// left out.
func windowEntries(res focus.Result) []focus.Entry {
	out := make([]focus.Entry, 0, len(res.Entries)+len(res.Outline))
	add := func(es []focus.Entry, focusZone bool) {
		for _, en := range es {
			if !en.Tail && (!focusZone || en.Refines != nil) {
				out = append(out, en)
			}
		}
	}
	if res.Outline != nil {
		add(res.Outline, false)
		add(res.Entries, true)
	} else {
		add(res.Entries, false)
	}
	return out
}

// flushFocus stores the telemetry that changed in every context the
// keeper touched (keeper goroutine only).
func (e *Engine) flushFocus() {
	var unstored []*mctx
	defer func() {
		for _, c := range unstored {
			e.keeper.dirty[c] = true
		}
	}()
	for c := range e.keeper.dirty {
		delete(e.keeper.dirty, c)
		c.telMu.Lock()
		if c.gone {
			// Deleted: its records must not come back.
			c.telMu.Unlock()
			continue
		}
		// Stored under the lock, so that a Delete cannot run in between
		// and leave records of a deleted context behind.
		if e.shared != nil {
			if !e.addFocus(c) {
				unstored = append(unstored, c)
			}
			c.telMu.Unlock()
			continue
		}
		kvs := make([]store.KV, 0, len(c.focusDirty))
		for k := range c.focusDirty {
			kvs = append(kvs, store.KV{Key: focusKey(c.key, k[0], k[1]), Value: mustJSON(c.focus[k])})
		}
		clear(c.focusDirty)
		if err := e.st.Put(kvs...); err != nil {
			e.log.Warn("focus telemetry not stored", "context", c.key.Context, "err", err)
		}
		c.telMu.Unlock()
	}
}

// addFocus adds to a shared store what this replica counted in c's
// telemetry since it last did: each changed node's counts minus those the
// store last gave (focusBase), in one statement that adds them to the
// stored counts, so that replicas counting windows of one context at once
// each count theirs once and none overwrites another's. The store's sums
// (other replicas' counts included) become c's. Counts not stored (the
// database down) stay to add at the next flush: ok is false. The caller
// holds c.telMu.
func (e *Engine) addFocus(c *mctx) (ok bool) {
	if c.focusBase == nil {
		c.focusBase = map[nodeKey2]NodeFocus{}
	}
	kvs := make([]store.KV, 0, len(c.focusDirty))
	for k := range c.focusDirty {
		f, b := c.focus[k], c.focusBase[k]
		d := NodeFocus{Expanded: f.Expanded - b.Expanded, LastExpanded: f.LastExpanded, Resident: f.Resident - b.Resident,
			LastResident: f.LastResident, Swaps: f.Swaps - b.Swaps, Questions: f.Questions - b.Questions}
		if f.LastQuestion != b.LastQuestion {
			d.LastQuestion = f.LastQuestion // else another replica's, if any, stays
		}
		kvs = append(kvs, store.KV{Key: focusKey(c.key, k[0], k[1]), Value: mustJSON(d)})
	}
	ctx, cancel := e.storeCtx()
	sums, err := e.shared.AddCounts(ctx, c.key.Tenant, c.key.Context, kvs...)
	cancel()
	if err != nil {
		e.log.Warn("focus telemetry not stored; kept for the next flush", "context", c.key.Context, "err", err)
		return false
	}
	clear(c.focusDirty)
	for _, kv := range sums {
		l, i, ok := parseFocusKey(kv.Key)
		var f NodeFocus
		if !ok || json.Unmarshal([]byte(kv.Value), &f) != nil {
			e.log.Warn("unreadable focus telemetry sum skipped", "context", c.key.Context, "key", kv.Key)
			continue
		}
		k := nodeKey2{l, i}
		if nf := c.focus[k]; nf != nil {
			*nf = f
		} else {
			c.focus[k] = &f
		}
		c.focusBase[k] = f
	}
	return true
}

// loadFocus reads a context's telemetry back (load).
func (e *Engine) loadFocus(c *mctx) error {
	err := e.st.Scan(recordPrefix(kindFocus, c.key), func(key, val string) bool {
		l, i, ok := parseFocusKey(key)
		f := &NodeFocus{}
		if err := json.Unmarshal([]byte(val), f); err != nil || !ok {
			// Telemetry is not history: an unreadable record starts afresh.
			e.log.Warn("unreadable focus telemetry record skipped", "context", c.key.Context, "err", err)
			return true
		}
		c.focus[nodeKey2{l, i}] = f
		if e.shared != nil {
			if c.focusBase == nil {
				c.focusBase = map[nodeKey2]NodeFocus{}
			}
			c.focusBase[nodeKey2{l, i}] = *f
		}
		return true
	})
	return err
}

// focusOf returns a node's telemetry (zero when no window showed it). The
// caller holds c.telMu.
func (c *mctx) focusOf(n *tree.Node) NodeFocus {
	if f := c.focus[nodeKey2{n.Level, n.Index}]; f != nil {
		return *f
	}
	return NodeFocus{}
}

// FocusTotals are the focus telemetry's aggregates since the process
// started, for /metrics.
type FocusTotals struct {
	// Windows counts the windows kept; Dropped those the full queue dropped.
	Windows, Dropped int64
	// Expansions counts node openings; Swaps nodes entering or leaving a
	// window between consecutive windows of a context.
	Expansions, Swaps int64
	// LastSwapRate is the last window's swap rate.
	LastSwapRate float64
}

// FocusTotals returns the aggregates.
func (e *Engine) FocusTotals() FocusTotals {
	if e.keeper == nil {
		return FocusTotals{}
	}
	k := e.keeper
	return FocusTotals{Windows: k.windows.Load(), Dropped: k.dropped.Load(), Expansions: k.expansions.Load(), Swaps: k.swaps.Load(),
		LastSwapRate: float64(k.swapMilli.Load()) / 1000}
}

package memory

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Pins: a message or a span of blocks that every window shows verbatim
// while it is pinned, within Options.PinShare of the budget. Pinned blocks
// are handed to the allocator as tail ranges (it tiles the rest around
// them) and rendered in their place (render.go); the pins of a context are
// one record (k:, schema.go), loaded with it.

// DefaultPinShare is the default Options.PinShare (memory.pin_share).
const DefaultPinShare = 0.25

// ErrBadPin means a pin names no message with text, or no blocks.
var ErrBadPin = errors.New("memory: invalid pin")

// Pin keeps a message, or a span of blocks, in every window.
type Pin struct {
	// ID names the pin in its context.
	ID int64 `json:"id"`
	// Msg is the pinned message's sequence number; -1 for a span.
	Msg int64 `json:"msg"`
	// First and Last are the pinned blocks, inclusive.
	First int `json:"first_block"`
	Last  int `json:"last_block"`
	// Created is when it was pinned.
	Created time.Time `json:"created"`
}

// pinsRecord is a context's stored pins.
type pinsRecord struct {
	// Next is the next pin's ID.
	Next int64 `json:"next"`
	Pins []Pin `json:"pins"`
}

// loadPins reads a context's pins (load).
func (e *Engine) loadPins(c *mctx) error {
	v, found, err := e.st.Get(singleKey(kindPins, c.key))
	if err != nil || !found {
		return err
	}
	if err := unmarshal(v, &c.pins); err != nil {
		// Pins are curation, not history: an unreadable record starts afresh.
		e.log.Warn("unreadable pins record skipped", "context", c.key.Context, "err", err)
		c.pins = pinsRecord{}
	}
	return nil
}

// storePins writes a context's pins. The caller holds c.mu.
func (e *Engine) storePins(c *mctx) error {
	return e.put(c, store.KV{Key: singleKey(kindPins, c.key), Value: mustJSON(c.pins)})
}

// AddPin pins message msg (when msg >= 0) or the blocks first..last.
func (e *Engine) AddPin(k Key, msg int64, first, last int) (Pin, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return Pin{}, err
	}
	defer c.mu.Unlock()
	p := Pin{ID: c.pins.Next, Msg: msg, First: first, Last: last, Created: e.opts.Now().UTC()}
	if msg >= 0 {
		if msg >= int64(len(c.msgs)) || c.msgs[msg].First < 0 {
			return Pin{}, fmt.Errorf("%w: message %d has no text in memory", ErrBadPin, msg)
		}
		p.First, p.Last = c.msgs[msg].First, c.msgs[msg].Last
	} else {
		p.Msg = -1
		if first < 0 || last < first || last >= c.tree.Len() {
			return Pin{}, fmt.Errorf("%w: blocks %d..%d (the context has %d)", ErrBadPin, first, last, c.tree.Len())
		}
	}
	c.pins.Next++
	c.pins.Pins = append(c.pins.Pins, p)
	if err := e.storePins(c); err != nil {
		c.pins.Pins = c.pins.Pins[:len(c.pins.Pins)-1]
		return Pin{}, err
	}
	return p, nil
}

// RemovePin unpins pin id; ErrNotFound when there is none.
func (e *Engine) RemovePin(k Key, id int64) error {
	c, err := e.acquire(k, false)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.pins.Pins, func(p Pin) bool { return p.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: pin %d", ErrNotFound, id)
	}
	old := c.pins.Pins
	c.pins.Pins = slices.Delete(slices.Clone(old), i, i+1)
	if err := e.storePins(c); err != nil {
		c.pins.Pins = old
		return err
	}
	return nil
}

// Pins returns a context's pins, oldest first.
func (e *Engine) Pins(k Key) ([]Pin, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	return slices.Clone(c.pins.Pins), nil
}

// pinnedBlocks chooses the pinned blocks this window shows: pins oldest
// first, each whole or not at all, while their cost stays within share of
// the budget and the memory budget; blocks already in the verbatim tail
// need nothing. It returns the blocks, sorted, and their cost. The caller
// holds c.mu.
func (e *Engine) pinnedBlocks(c *mctx, tail []focus.Range, budget, memBudget int) ([]int, int) {
	if len(c.pins.Pins) == 0 {
		return nil, 0
	}
	limit := min(memBudget, int(e.opts.PinShare*float64(budget)))
	inTail := func(b int) bool {
		for _, r := range tail {
			if b >= r.First && b <= r.Last {
				return true
			}
		}
		return false
	}
	chosen := map[int]bool{}
	cost := 0
	for _, p := range c.pins.Pins {
		add := 0
		var prev *tree.Node
		var blocks []int
		for b := p.First; b <= p.Last && b < c.tree.Len(); b++ {
			n := c.tree.Block(b)
			if inTail(b) || chosen[b] {
				prev = nil
				continue
			}
			add += n.Cost + entryOverhead(n, focus.Verbatim, prev)
			blocks = append(blocks, b)
			prev = n
		}
		if cost+add > limit {
			continue // this pin does not fit what is left of the share
		}
		cost += add
		for _, b := range blocks {
			chosen[b] = true
		}
	}
	out := make([]int, 0, len(chosen))
	for b := range chosen {
		out = append(out, b)
	}
	slices.Sort(out)
	return out, cost
}

// markPinned marks the allocator's tail entries of pinned blocks, so that
// the renderer writes them in their place.
func markPinned(c *mctx, entries []focus.Entry, pinned map[int]bool) {
	for i := range entries {
		en := &entries[i]
		if en.Tail && en.First == en.Last && pinned[en.First] {
			en.Why, en.Node = focus.Pinned, c.tree.Block(en.First)
			var prev *tree.Node
			if pinned[en.First-1] {
				prev = c.tree.Block(en.First - 1)
			}
			en.Cost = en.Node.Cost + entryOverhead(en.Node, focus.Verbatim, prev)
		}
	}
}

// withPinned adds the pinned blocks, one range each, to the tail ranges
// (which they never overlap), sorted.
func withPinned(tail []focus.Range, pinned []int) []focus.Range {
	out := slices.Clone(tail)
	for _, b := range pinned {
		out = append(out, focus.Range{First: b, Last: b})
	}
	sortRanges(out)
	return out
}

// pinnedWithin reports whether a pin covers any of blocks first..last. The
// caller holds c.mu.
func (c *mctx) pinnedWithin(first, last int) bool {
	for _, p := range c.pins.Pins {
		if p.First <= last && first <= p.Last {
			return true
		}
	}
	return false
}

package memory

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestPinnedMessageInEveryWindow: a pinned message that no question
// matches is in the next window, verbatim, with the reason "pinned"; once
// unpinned it is not; pins are stored and read back.
func TestPinnedMessageInEveryWindow(t *testing.T) {
	dir := t.TempDir()
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Tenant: "t", Context: "pins"}
	conv := conversation(100, 6)
	conv[21] = msg("user", "Remember: the spare key is under the blue flowerpot.")
	if _, err := e.Import(k, conv, e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	const fact = "the spare key is under the blue flowerpot"
	ask := func(e *Engine) *Window {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "What should I cook tonight?")}, Budget: 1500, PerMessage: 4, TailPercent: 40, DryRun: true, AsLive: true})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := ask(e); strings.Contains(w.Memory, fact) {
		t.Fatalf("the fact is in the window before it is pinned:\n%s", w.Memory)
	}
	p, err := e.AddPin(k, 21, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := ask(e)
	if !strings.Contains(w.Memory, fact) {
		t.Fatalf("the pinned message is not in the window:\n%s", w.Memory)
	}
	pinnedEntries := 0
	for _, en := range w.Entries {
		if en.Reason == "pinned" {
			pinnedEntries++
			if en.Level != 0 || en.Detail != "verbatim" || en.First < p.First || en.First > p.Last {
				t.Errorf("pinned entry %+v outside the pin %+v", en, p)
			}
		}
	}
	if pinnedEntries != p.Last-p.First+1 {
		t.Errorf("%d pinned entries for pin %+v", pinnedEntries, p)
	}
	e.Close()
	e, err = testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if ps, _ := e.Pins(k); len(ps) != 1 || ps[0].ID != p.ID {
		t.Fatalf("pins read back: %+v", ps)
	}
	if w := ask(e); !strings.Contains(w.Memory, fact) {
		t.Errorf("the pin did not survive a restart")
	}
	if err := e.RemovePin(k, p.ID); err != nil {
		t.Fatal(err)
	}
	if w := ask(e); strings.Contains(w.Memory, fact) {
		t.Errorf("the fact is still in the window once unpinned")
	}
	if _, err := e.AddPin(k, -1, 5, 1); err == nil {
		t.Errorf("a backwards span was pinned")
	}
}

// TestPinsKeepWindowInvariants: with random pins, every window stays
// within its budget, pinned blocks take at most their share, and a pin
// that fits the share alone is shown whole.
func TestPinsKeepWindowInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		render := rapid.SampledFrom([]string{RenderOutline, RenderChronological}).Draw(t, "render")
		e, err := testOpen(t, Options{Now: fixedClock(), Render: render, PinShare: rapid.Float64Range(0.05, 0.6).Draw(t, "share")})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		k := Key{Tenant: "p", Context: "c"}
		conv := conversation(rapid.IntRange(3, 60).Draw(t, "turns"), rapid.Uint64().Draw(t, "seed"))
		if _, err := e.Import(k, conv, e.opts.Now()); err != nil {
			t.Fatal(err)
		}
		st, _ := e.Stats(k)
		for i := rapid.IntRange(0, 4).Draw(t, "pins"); i > 0; i-- {
			if rapid.Bool().Draw(t, "message") {
				e.AddPin(k, int64(rapid.IntRange(1, len(conv)-1).Draw(t, "msg")), 0, 0)
			} else {
				first := rapid.IntRange(0, st.Blocks-1).Draw(t, "first")
				e.AddPin(k, -1, first, rapid.IntRange(first, min(st.Blocks-1, first+6)).Draw(t, "last"))
			}
		}
		budget := rapid.IntRange(200, 5000).Draw(t, "budget")
		r := Request{Key: k, Messages: []Message{msg("user", "what about the river?")}, Budget: budget, PerMessage: 4, TailPercent: 40}
		w, err := e.Prepare(r)
		if err != nil {
			return
		}
		if got := promptTokens(e.Counter(), r, w); got > budget {
			t.Fatalf("prompt %d tokens > budget %d", got, budget)
		}
		pinnedTokens := 0
		for _, en := range w.Entries {
			if en.Reason == "pinned" {
				pinnedTokens += en.Tokens
			}
		}
		if limit := int(e.opts.PinShare * float64(budget)); pinnedTokens > limit {
			t.Fatalf("pinned blocks take %d tokens, share %d", pinnedTokens, limit)
		}
	})
}

// TestTreeView: the roots tile the timeline; a level's range opens a
// node into its children; pins and the viewer's clearances show.
func TestTreeView(t *testing.T) {
	e := openScopedEngine(t)
	k := Key{Tenant: "acme", Context: "tree"}
	conv := conversation(120, 8)
	conv[7] = msg("user", "Status of project Nightjar: the launch code is OWL-771.")
	if _, err := e.Import(k, conv, e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddPin(k, 7, 0, 0); err != nil {
		t.Fatal(err)
	}
	roots, err := e.Tree(k, -1, 0, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, n := range roots.Nodes {
		if n.First != next {
			t.Fatalf("roots leave a gap at block %d: %+v", next, n)
		}
		next = n.Last + 1
	}
	if next != roots.Levels[0] || roots.Level != -1 {
		t.Fatalf("roots end at %d of %d blocks", next, roots.Levels[0])
	}
	top := roots.Nodes[0]
	kids, err := e.Tree(k, top.Level-1, top.Index*roots.Fanout, roots.Fanout, nil)
	if err != nil || len(kids.Nodes) != roots.Fanout || kids.Nodes[0].First != top.First || kids.Nodes[len(kids.Nodes)-1].Last != top.Last {
		t.Fatalf("children of %+v: %+v %v", top, kids.Nodes, err)
	}
	for _, scopes := range [][]string{nil, {"internal"}} {
		c, _ := e.acquire(k, false)
		first := c.msgs[7].First
		c.mu.Unlock()
		blk, err := e.Tree(k, 0, first, 1, scopes)
		if err != nil || len(blk.Nodes) != 1 {
			t.Fatal(err)
		}
		b := blk.Nodes[0]
		if !b.Pinned || (scopes == nil) != (b.Text == WithheldText) || (scopes != nil && !strings.Contains(b.Text, "OWL-771")) {
			t.Errorf("scopes %v: pinned block %+v", scopes, b)
		}
	}
}

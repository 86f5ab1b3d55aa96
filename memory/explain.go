package memory

import (
	"slices"
	"sort"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/tree"
)

// Windows that explain themselves: every entry carries its reason and
// score from the allocator (render.go copies them); explain adds the terms
// each entry matched and the relevant blocks that were left out, with why:
// for a dry run before it returns, for a live window in the background
// (KeepWindow), never on the request path.

// whyInput is what a window's explanation is computed from. Everything in
// it was computed for the request anyway and is kept by reference.
type whyInput struct {
	// c is the context the window was assembled from.
	c *mctx
	// question is the text of the request's last user message.
	question string
	// res is the allocator's result: what KeepWindow renders again for a
	// viewer.
	res focus.Result
	// pre is the preamble the window's memory text opened with.
	pre string
	// tail are the sequence numbers of the verbatim tail's stored messages.
	tail []int64
	// blocks are the tree's blocks and levels its level sizes when the
	// window was assembled, so that the keeper reads them without c.mu.
	blocks []*tree.Node
	levels []int
	// query and refocus are the lens's terms: the question's, and those the
	// refocus rounds added.
	query, refocus []lens.Term
	// scores are the first round's block scores (BM25, semantic, days);
	// rescored the last refocus round's, nil without one.
	scores, rescored map[int]float64
	// semantic are the semantic lens's scores, nil without an embedder.
	semantic map[int]float64
	// minRelevance is the expansion threshold as a share of the best score.
	minRelevance float64
	// scopes are the caller's clearances.
	scopes []string
	// mounts are the mounted memories' parts of the window, in the order
	// their text follows the own memory's (renderMount).
	mounts []mountPart
	// explained is set once explain ran.
	explained bool
}

// mountPart is what a view needs to render a mounted memory's part of a
// window again: the memory's name and the allocator's entries over its
// tree.
type mountPart struct {
	// name is the mounted memory's context id (EntryInfo.Memory).
	name string
	// c is the mounted memory while the request that assembled the window
	// holds it; nil in a kept window (a view locks the mount anew).
	c *mctx
	// entries are the allocator's entries over the mount's tree.
	entries []focus.Entry
}

// mountOf returns the mounted memory named name among parts that hold one,
// or nil.
func mountOf(parts []mountPart, name string) *mctx {
	for _, p := range parts {
		if p.name == name && p.c != nil {
			return p.c
		}
	}
	return nil
}

// OmittedMatch is a block relevant to the question that the window does
// not show verbatim.
type OmittedMatch struct {
	// Block is the block's index; Msg its message's sequence number.
	Block int   `json:"block"`
	Msg   int64 `json:"msg"`
	// Score is its relevance, Round the relevance round that scored it (1,
	// or 2 for the refocus round).
	Score float64 `json:"score"`
	Round int     `json:"round"`
	// Why is "policy" (the caller may not see it), "below threshold"
	// (weaker than the expansion threshold, MinRelevance of the round's best)
	// or "budget" (strong enough, but the budget ran out).
	Why string `json:"why"`
	// Terms are the query terms the block holds.
	Terms []string `json:"terms,omitempty"`
}

// maxOmittedMatches bounds the omitted matches an explanation lists.
const maxOmittedMatches = 16

// explain completes the window's explanation: the best relevant blocks
// left out, with why (omitted), then the terms each entry matched
// (explainTerms). The caller holds c.mu.
func (e *Engine) explain(c *mctx, w *Window) {
	e.omitted(w)
	e.explainTerms(c, w, func(name string) *mctx { return mountOf(w.why.mounts, name) })
}

// omitted lists the best relevant blocks the window does not show
// verbatim, from both rounds, strongest relative to their round's best
// first, with why: budget or below threshold here, policy (and their
// terms) with explainTerms. It reads only what the window captured when it
// was assembled and the blocks' message numbers, which never change: no
// lock is needed (the keeper runs it).
func (e *Engine) omitted(w *Window) {
	x := w.why
	if x == nil || w.OmittedMatches != nil {
		return
	}
	w.OmittedMatches = []OmittedMatch{}
	shown := map[int]bool{}
	withheld := map[int]bool{}
	for _, en := range w.Entries {
		// A mounted memory's blocks are its own, not the context's.
		if en.Memory == "" && en.Level == 0 && en.Detail == "verbatim" {
			if en.Withheld {
				withheld[en.First] = true
			} else {
				shown[en.First] = true
			}
		}
	}
	type cand struct {
		b           int
		share, best float64
		round       int
	}
	better := func(x, y cand) bool { return x.share > y.share || (x.share == y.share && x.b < y.b) }
	// The best few, kept sorted while scanning: a vague question scores
	// thousands of blocks.
	top := make([]cand, 0, maxOmittedMatches+1)
	for round, m := range []map[int]float64{x.scores, x.rescored} {
		best := 0.0
		for _, s := range m {
			best = max(best, s)
		}
		for b, s := range m {
			if s <= 0 || shown[b] {
				continue
			}
			cd := cand{b, s / best, best, round + 1}
			if len(top) == maxOmittedMatches && !better(cd, top[len(top)-1]) {
				continue
			}
			// A block scored in both rounds keeps its better showing.
			if i := slices.IndexFunc(top, func(t cand) bool { return t.b == b }); i >= 0 {
				if !better(cd, top[i]) {
					continue
				}
				top = slices.Delete(top, i, i+1)
			}
			i := sort.Search(len(top), func(i int) bool { return better(cd, top[i]) })
			top = slices.Insert(top, i, cd)
			if len(top) > maxOmittedMatches {
				top = top[:maxOmittedMatches]
			}
		}
	}
	for _, cd := range top {
		if cd.b < 0 || cd.b >= len(x.blocks) {
			continue
		}
		om := OmittedMatch{Block: cd.b, Msg: x.blocks[cd.b].Msg, Score: cd.share * cd.best, Round: cd.round, Why: "budget"}
		switch {
		case withheld[cd.b]:
			om.Why = "policy"
		case cd.share < x.minRelevance:
			om.Why = "below threshold"
		}
		w.OmittedMatches = append(w.OmittedMatches, om)
	}
}

// explainTerms sets the terms each entry (but outline ones) and each
// omitted match matched, and the semantic similarity of the blocks the
// semantic lens scored; an omitted match the caller may not see is
// "policy", without terms. It reads the blocks as they are now (a prune
// may have emptied some). An entry of a mounted memory is read from the
// memory mount returns for its name (none: no terms). The caller holds
// c.mu and the mounts' locks.
func (e *Engine) explainTerms(c *mctx, w *Window, mount func(name string) *mctx) {
	x := w.why
	if x == nil || x.explained {
		return
	}
	x.explained = true
	terms := map[string]bool{}
	for _, t := range x.query {
		terms[t.Text] = true
	}
	for _, t := range x.refocus {
		terms[t.Text] = true
	}
	matched := func(text string) []string {
		var out []string
		for _, t := range lens.Terms(text) {
			if terms[t] && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out
	}
	for i := range w.Entries {
		en := &w.Entries[i]
		src := c
		if en.Memory != "" {
			if src = mount(en.Memory); src == nil {
				continue
			}
		}
		n := src.tree.Node(en.Level, en.Index)
		if n == nil || en.Reason == focus.Cover.String() {
			continue
		}
		text := n.Text
		if en.Detail == focus.Short.String() {
			text = n.Short
		}
		en.Terms = matched(text)
		if s, ok := x.semantic[en.First]; ok && en.Level == 0 && en.Memory == "" {
			en.Similarity = cosineOf(s)
		}
	}
	for i := range w.OmittedMatches {
		om := &w.OmittedMatches[i]
		n := c.tree.Block(om.Block)
		if n == nil || om.Why == "policy" {
			continue
		}
		if e.withheldFor(n, x.scopes) {
			om.Why = "policy"
			continue
		}
		om.Terms = matched(n.Text)
	}
}

// cosineOf turns a semantic lens score back into the cosine similarity it
// was scaled from (semanticScores).
func cosineOf(s float64) float64 { return semanticMin + s*(1-semanticMin)/semanticScale }

// withheldFor reports whether the policy keeps block n's text from a
// caller holding scopes.
func (e *Engine) withheldFor(n *tree.Node, scopes []string) bool {
	if len(n.Spans) == 0 {
		return false
	}
	_, excluded, _ := e.opts.Policy.Apply(n.Text, toPolicySpans(n.Spans), scopes)
	return excluded
}

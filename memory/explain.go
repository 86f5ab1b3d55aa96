package memory

import (
	"sort"

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
	// explained is set once explain ran.
	explained bool
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

// explain completes the window's explanation: the terms each entry
// matched (and its semantic similarity), and the best relevant blocks left
// out, with why. The caller holds c.mu, and c's tree still holds every
// block the window was assembled from.
func (e *Engine) explain(c *mctx, w *Window) {
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
		seen := map[string]bool{}
		for _, t := range lens.Terms(text) {
			if terms[t] && !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
		return out
	}
	shown := map[int]bool{}
	withheld := map[int]bool{}
	for i := range w.Entries {
		en := &w.Entries[i]
		if en.node == nil {
			continue
		}
		text := en.node.Text
		if en.Detail == "headline" {
			text = en.node.Short
		}
		en.Terms = matched(text)
		if s, ok := x.semantic[en.First]; ok && en.Level == 0 {
			en.Similarity = cosineOf(s)
		}
		if en.Level == 0 && en.Detail == "verbatim" {
			if en.Withheld {
				withheld[en.First] = true
			} else {
				shown[en.First] = true
			}
		}
	}
	// The best relevant blocks not shown, from both rounds.
	type cand struct {
		b     int
		score float64
		round int
		best  float64
	}
	var cands []cand
	for round, m := range []map[int]float64{x.scores, x.rescored} {
		best := 0.0
		for _, s := range m {
			best = max(best, s)
		}
		for b, s := range m {
			if s > 0 && !shown[b] {
				cands = append(cands, cand{b, s / max(best, 1e-9), round + 1, best})
			}
		}
	}
	// Strongest relative to their round's best first; a block scored in
	// both rounds keeps its better showing.
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].b < cands[j].b
	})
	listed := map[int]bool{}
	for _, cd := range cands {
		if len(w.OmittedMatches) == maxOmittedMatches {
			break
		}
		if listed[cd.b] {
			continue
		}
		listed[cd.b] = true
		n := c.tree.Block(cd.b)
		if n == nil {
			continue
		}
		om := OmittedMatch{Block: cd.b, Msg: n.Msg, Score: cd.score * cd.best, Round: cd.round, Why: "budget"}
		switch {
		case withheld[cd.b] || e.withheldFor(n, x.scopes):
			om.Why = "policy"
		case cd.score < x.minRelevance:
			om.Why = "below threshold"
		}
		if om.Why != "policy" {
			om.Terms = matched(n.Text)
		}
		w.OmittedMatches = append(w.OmittedMatches, om)
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

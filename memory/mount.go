// Mounted memories: a request may draw on other MegaContexts of its
// tenant, read-only, next to its own (Request.Mounts).
//
// The same lens scores every memory's blocks for the question (each with
// its own index, embeddings and days), and the memories compete for the
// memory budget by what they hold for it: once the own memory's mandatory
// parts are placed, a share of the rest (at most mountShare of it) goes to
// the mounted memories in proportion to their best block's relevance
// against the own memory's, those below the expansion threshold of the
// best getting nothing. Each memory then gets the same allocator within its
// share: the own memory as always (with the budget reduced by what the
// mounts took), each mount in chronological mode (its coarsest outline,
// expanded where the question points). A mount's part of the memory text
// opens with a line naming it, so every span quoted from it names its
// origin; the window's entries name it too (EntryInfo.Memory). Mounts are
// filtered by the caller's scopes exactly as the own memory is, and never
// change: nothing is ingested into them, and their focus (hysteresis,
// telemetry) is left alone.

package memory

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/tree"
)

// ErrMountNotFound means a mounted memory does not exist in the tenant.
var ErrMountNotFound = fmt.Errorf("%w: mounted memory", ErrNotFound)

// Mount budget parameters.
const (
	// mountShare is the most of the memory budget left after the own
	// memory's mandatory parts that the mounts together may take.
	mountShare = 0.6
	// minMountBudget is the least budget a mount is worth: below it, its
	// outline and one expansion do not fit.
	minMountBudget = 160
)

// MountPreamble opens a mounted memory's part of the memory text.
func MountPreamble(name string) string {
	return fmt.Sprintf("<memory from=%q>\nFrom the mounted memory %q (read-only, shared), oldest first, times in UTC. Lines with ~ summarize a span; other lines quote it verbatim.\n", name, name)
}

// acquireWithMounts locks k (created when create is set) and the mounted
// memories of its tenant named by mounts, all in id order so that no two
// requests wait on each other. It returns k's context and the mounts' in
// the order named; a mount that does not exist is ErrMountNotFound.
func (e *Engine) acquireWithMounts(k Key, create bool, mounts []string) (*mctx, []*mctx, error) {
	if len(mounts) == 0 {
		c, err := e.acquire(k, create)
		return c, nil, err
	}
	keys := []Key{k}
	for _, m := range mounts {
		mk := Key{Tenant: k.Tenant, Context: m}
		if err := mk.validate(); err != nil {
			return nil, nil, err
		}
		if !slices.ContainsFunc(keys, func(x Key) bool { return x.id() == mk.id() }) {
			keys = append(keys, mk)
		}
	}
	order := slices.Clone(keys)
	slices.SortFunc(order, func(a, b Key) int { return strings.Compare(a.id(), b.id()) })
	locked := map[string]*mctx{}
	unlock := func() {
		for _, c := range locked {
			c.mu.Unlock()
		}
	}
	for _, key := range order {
		own := key.id() == k.id()
		c, err := e.acquire(key, own && create)
		if err != nil {
			unlock()
			if !own && errors.Is(err, ErrNotFound) {
				return nil, nil, fmt.Errorf("%w %q", ErrMountNotFound, key.Context)
			}
			return nil, nil, err
		}
		locked[key.id()] = c
	}
	out := make([]*mctx, 0, len(keys)-1)
	for _, key := range keys[1:] {
		out = append(out, locked[key.id()])
	}
	return locked[k.id()], out, nil
}

// mountPlan is one mounted memory's part of a window.
type mountPlan struct {
	c      *mctx                             // the mounted memory
	query  []lens.Term                       // the question's terms in it
	score  func([]lens.Term) map[int]float64 // its lexical scorer (refocus rounds)
	scores map[int]float64                   // its block scores for the question
	best   float64                           // its best score (0: not relevant enough)
	budget int                               // the share of the budget it earned
}

// assembleMounted assembles the window of c with its mounts: the mounts
// that earn a share of the budget (see the file comment) are allocated and
// rendered after the own memory, which gets the rest.
func (e *Engine) assembleMounted(c *mctx, r Request, seqs []int64, w *Window, mounts []*mctx) {
	if len(mounts) == 0 {
		e.assemble(c, r, seqs, w)
		return
	}
	probe := &Window{}
	lead, tail, memFixed, ok := e.selectTail(c, r, seqs, probe)
	if !ok {
		w.TailFrom = -1
		return
	}
	free := r.Budget - lead - tail - memFixed
	question := lastUserText(r.Messages)
	// The own memory's best match, its verbatim tail left out as assemble
	// leaves it out.
	own := 0.0
	if c.tree.Len() > 0 && free > 0 {
		tailRanges := tailBlockRanges(c, r, seqs, probe.TailFrom)
		inTail := func(b int) bool {
			for _, tr := range tailRanges {
				if b >= tr.First && b <= tr.Last {
					return true
				}
			}
			return false
		}
		q, ctx := e.query(c, r, probe.TailFrom)
		s, _ := e.memoryScores(c, e.scorer(c, question, inTail), q, ctx, question, inTail)
		own = bestScore(s)
	}
	none := func(int) bool { return false }
	plans := make([]mountPlan, len(mounts))
	top := own
	for i, mc := range mounts {
		q, ctx := e.query(mc, r, probe.TailFrom)
		score := e.scorer(mc, question, none)
		s, _ := e.memoryScores(mc, score, q, ctx, question, none)
		plans[i] = mountPlan{c: mc, query: q, score: score, scores: s, best: bestScore(s)}
		top = max(top, plans[i].best)
	}
	sum := own
	for i := range plans {
		if p := &plans[i]; p.best <= 0 || p.best < e.opts.MinRelevance*top {
			p.best = 0 // not relevant enough to compete
		}
		sum += plans[i].best
	}
	taken := 0
	for i := range plans {
		p := &plans[i]
		if p.best > 0 && free > 0 {
			p.budget = int(mountShare * float64(free) * p.best / sum)
		}
		if p.budget < minMountBudget+e.mountFixed(p.c) {
			p.budget = 0
		}
		taken += p.budget
	}
	// The own memory gets the rest: the prompt's budget less what the
	// mounts took.
	own2 := r
	own2.Budget -= taken
	e.assemble(c, own2, seqs, w)
	if w.TailFrom < 0 {
		return
	}
	for _, p := range plans {
		if p.budget > 0 {
			e.renderMount(p, r, w)
		}
	}
}

// scorer returns the lexical scorer of c's blocks outside the tail for a
// question (see scoreBlocks): the best maxScored of each query's scores.
func (e *Engine) scorer(c *mctx, question string, inTail func(int) bool) func(q []lens.Term) map[int]float64 {
	ak := newAsking(question)
	return func(q []lens.Term) map[int]float64 {
		return e.scoreBlocks(c, q, inTail, ak)
	}
}

// memoryScores are the lens's block scores of c for a question: lexical
// (the question's terms, and the recent turns' at a lower weight),
// semantic, the days it names and the user's statements a gathering
// question lifts (gather), the same for the own memory and its
// mounts; semantic is the semantic part alone (for explanations).
func (e *Engine) memoryScores(c *mctx, score func([]lens.Term) map[int]float64, query, context []lens.Term, question string, inTail func(int) bool) (scores, semantic map[int]float64) {
	if c.tree.Len() == 0 {
		return nil, nil
	}
	scores = score(query)
	if len(context) > 0 {
		scores = combine(scores, score(context))
	}
	// Semantic similarity (when an embedder is configured) finds what shares
	// no words with the question.
	semantic = e.semanticScores(c, question, inTail)
	for b, s := range semantic {
		scores[b] += s
	}
	e.focusOnDays(c, question, scores, score, inTail)
	e.gather(c, question, scores, inTail)
	return topScores(scores, maxScored), semantic
}

func bestScore(scores map[int]float64) float64 {
	best := 0.0
	for _, s := range scores {
		best = max(best, s)
	}
	return best
}

// mountFixed is the cost of a mount's part of the memory text beyond its
// entries: its opening line, its closing and the line break before it.
func (e *Engine) mountFixed(c *mctx) int {
	return e.countCached(MountPreamble(c.key.Context)) + e.countCached(Closing) + 2
}

// renderMount allocates a mount's share and appends its part to w.
func (e *Engine) renderMount(p mountPlan, r Request, w *Window) {
	mc := p.c
	fixed := e.mountFixed(mc)
	in := focus.Input{
		Tree:         mc.tree,
		Budget:       p.budget - fixed,
		Scores:       p.scores,
		Overhead:     entryOverhead,
		Rounds:       2,
		MinRelevance: e.opts.MinRelevance,
		Refocus: func(_ int, revealed []*tree.Node) map[int]float64 {
			extra, from := e.refocusTerms(mc, p.query, map[string]bool{}, revealed)
			if len(extra) == 0 {
				return nil
			}
			s := p.score(lens.Merge(extra, scaled(p.query, refocusQuestionWeight)))
			for _, b := range from {
				delete(s, b)
			}
			return s
		},
	}
	res := focus.Allocate(in)
	text, entries, hits := e.render(mc, res.Entries, r.Scopes)
	if text == "" {
		return
	}
	if w.Memory == "" {
		// The memory message is the mounts' alone: it costs its framing.
		w.MemoryTokens += r.PerMessage + 2
		w.Tokens += r.PerMessage + 2
	}
	for i := range entries {
		entries[i].Memory = mc.key.Context
	}
	w.Memory = e.joinMount(w.Memory, mc.key.Context, text, entries)
	if w.why != nil {
		w.why.mounts = append(w.why.mounts, mountPart{name: mc.key.Context, c: mc, entries: res.Entries})
	}
	w.Entries = append(w.Entries, entries...)
	w.Hits = append(w.Hits, hits...)
	w.MemoryTokens += res.Cost + fixed
	w.Tokens += res.Cost + fixed
	w.Expanded += res.Expanded
}

// joinMount appends a mounted memory's part to the memory text: its text as
// render wrote it (opening with the own memory's preamble) under the
// mount's own preamble, after a line break. Entries, render's for that
// text, are shifted to where their text now lies in the whole.
func (e *Engine) joinMount(memory, name, text string, entries []EntryInfo) string {
	if memory != "" {
		memory += "\n"
	}
	shift := len(memory) + len(MountPreamble(name)) - len(e.preamble())
	for i := range entries {
		if entries[i].At[1] > entries[i].At[0] {
			entries[i].At[0] += shift
			entries[i].At[1] += shift
		}
	}
	return memory + MountPreamble(name) + strings.TrimPrefix(text, e.preamble())
}

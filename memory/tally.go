package memory

import (
	"slices"
	"strings"

	"github.com/megacontext/megacontext/memory/tree"
	"github.com/megacontext/megacontext/tokens"
)

// tally collects every text one ingest must count (block texts, their
// redacted forms, message and gist headers, gist texts) and counts them
// all at once when the ingest is complete: one tokens.CountAll, so one
// round trip to a remote tokenizer however many blocks, gists and headers
// the ingest made. Each stored text is counted once, here; assembly reads
// the stored counts. It is used under the context's lock, by one goroutine.
type tally struct {
	// texts are the distinct texts to count, in the order first added.
	texts []string
	// at maps a text to its position in texts.
	at map[string]int
	// sinks are, per text, the fields that receive its count.
	sinks [][]*int
	// cached marks texts that repeat across ingests (headers): their counts
	// go to the engine's cost cache too.
	cached []bool
	// then runs after the counts are in, in order (sums, maxima).
	then []func()
}

// count asks for the token count of text to be written to dst when the
// tally settles. An empty text counts 0 at once.
func (t *tally) count(text string, dst *int) { t.add(text, dst, false) }

// countHeader is count for a text that repeats across ingests (a header):
// a count the engine already knows is written at once.
func (e *Engine) countHeader(t *tally, text string, dst *int) {
	e.costMu.Lock()
	n, ok := e.costCache[text]
	e.costMu.Unlock()
	if ok {
		*dst = n
		return
	}
	t.add(text, dst, true)
}

func (t *tally) add(text string, dst *int, cached bool) {
	if text == "" {
		*dst = 0
		return
	}
	if t.at == nil {
		t.at = map[string]int{}
	}
	i, ok := t.at[text]
	if !ok {
		i = len(t.texts)
		t.at[text] = i
		t.texts = append(t.texts, text)
		t.sinks = append(t.sinks, nil)
		t.cached = append(t.cached, false)
	}
	t.sinks[i] = append(t.sinks[i], dst)
	t.cached[i] = t.cached[i] || cached
}

// after runs f once the counts are in. f must be idempotent: a deferred
// tally runs it again with the exact counts.
func (t *tally) after(f func()) { t.then = append(t.then, f) }

// merge adds o's texts, fields and after functions to t.
func (t *tally) merge(o *tally) {
	for i, text := range o.texts {
		for _, dst := range o.sinks[i] {
			t.add(text, dst, o.cached[i])
		}
	}
	t.then = append(t.then, o.then...)
}

// countMode says how appendMessages counts.
type countMode int

// The count modes of appendMessages.
const (
	// countAll counts the new texts and what earlier replies deferred in
	// one batch.
	countAll countMode = iota
	// countFresh counts the same, but leaves what replies deferred to the
	// next real ingest (a dry run, taken back afterwards).
	countFresh
	// countLater gives the new texts the estimate's costs and defers their
	// batch to the next ingest (a stored reply).
	countLater
)

// deferred is the costs a reply's storage left for the next ingest to
// count: the tally, and the nodes and messages stored with the estimate's
// costs until then.
type deferred struct {
	t     tally
	nodes []*tree.Node
	recs  []*msgRecord
	// added is what each of recs added to the context's token total when
	// it was deferred (the estimate's count).
	added []int
}

// deferCounts gives the ingest's nodes and messages the estimate's costs
// now and keeps their tally for the next ingest of the context, which
// counts them in its own batch: storing a reply costs no round trip, so a
// turn costs one. The messages are stored marked Uncounted, so that a
// restart in between counts them again (recountUncounted).
func (e *Engine) deferCounts(c *mctx, t *tally, nodes []*tree.Node, recs []*msgRecord) {
	if c.uncounted == nil {
		c.uncounted = &deferred{}
	}
	d := c.uncounted
	counts := tokens.CountAll(tokens.Estimate{}, t.texts)
	for i, n := range counts {
		for _, dst := range t.sinks[i] {
			*dst = n
		}
	}
	for _, f := range t.then {
		f()
	}
	sumGists(c, nodes)
	for _, rec := range recs {
		rec.Uncounted = true
		c.rec.Tokens += rec.Tokens
		d.added = append(d.added, rec.Tokens)
	}
	d.t.merge(t)
	d.nodes = append(d.nodes, nodes...)
	d.recs = append(d.recs, recs...)
}

// settleAll counts t (the ingest's fresh nodes and messages) together
// with whatever an earlier reply deferred, in one batch, sums the gists
// again and updates the context's token total. It returns every node whose
// record must be stored (the deferred ones, then the fresh ones) and the
// deferred messages, whose records must be stored again. With keep (a dry
// run, whose changes to the context are taken back) the deferred costs are
// made exact in memory but stay deferred: the next real ingest counts and
// stores them.
func (e *Engine) settleAll(c *mctx, t *tally, nodes []*tree.Node, fresh []*msgRecord, keep bool) ([]*tree.Node, []*msgRecord) {
	d := c.uncounted
	if d != nil {
		t.merge(&d.t)
		nodes = append(slices.Clip(d.nodes), nodes...)
	}
	e.settle(t)
	sumGists(c, nodes)
	for _, rec := range fresh {
		c.rec.Tokens += rec.Tokens
	}
	if d == nil || keep {
		return nodes, nil
	}
	c.uncounted = nil
	for i, rec := range d.recs {
		c.rec.Tokens += rec.Tokens - d.added[i]
		rec.Uncounted = false
	}
	return nodes, d.recs
}

// sumGists sums the Tokens of gist nodes from their children again, in
// creation order (children before parents): gists are built before their
// blocks are counted.
func sumGists(c *mctx, nodes []*tree.Node) {
	for _, n := range nodes {
		if n.Level == 0 {
			continue
		}
		n.Tokens = 0
		for _, ch := range c.tree.Children(n) {
			n.Tokens += ch.Tokens
		}
	}
}

// tallyBlock asks for a block's costs, once it is in the tree (prev is
// the block before it, nil for the first): its text, its redacted form
// (its cost is the larger), its header, its join to the previous block of
// its message and its details header.
func (e *Engine) tallyBlock(t *tally, b, prev *tree.Node) {
	t.count(b.Text, &b.Tokens)
	lead := blockHeader(b.Time, b.Role)
	marks := 0
	if b.Part > 0 {
		lead += "…"
		marks = 1 // entryOverhead's charge for the ellipsis
	}
	e.countLead(t, lead, strings.TrimLeft(b.Text, " "), b.Text, marks, &b.Head)
	if prev != nil && b.Part > 0 && prev.Msg == b.Msg && prev.Part == b.Part-1 {
		pair := new(int)
		t.count(prev.Text+b.Text, pair)
		t.after(func() { b.Join = max(-1, *pair-prev.Tokens-b.Tokens) })
	}
	e.countHeader(t, detailsHeader(b), &b.DetailsHead)
	// A stamped window's role line (stampedOverhead), counted once.
	e.countHeader(t, "\n"+roleLead(b.Role), new(int))
	redCost := new(int)
	if len(b.Spans) > 0 {
		// Placeholders can cost more than what they replace: budget the larger.
		red, _, _ := e.opts.Policy.Apply(b.Text, toPolicySpans(b.Spans), nil)
		t.count(red, redCost)
	}
	t.after(func() { b.Cost = max(b.Tokens, *redCost) })
}

// tallySum makes a message's Tokens what its blocks cost written one
// after the other, once counted.
func (e *Engine) tallySum(t *tally, c *mctx, rec *msgRecord) {
	t.after(func() {
		rec.Tokens = 0
		for b := rec.First; b >= 0 && b <= rec.Last; b++ {
			rec.Tokens += c.tree.Block(b).Tokens + c.tree.Block(b).Join
		}
	})
}

// recountUncounted, at load, defers again the counts of messages stored
// with the estimate's costs (a reply stored just before the process
// stopped), with every gist above their blocks: the next ingest counts
// them.
func (e *Engine) recountUncounted(c *mctx) {
	d := &deferred{}
	seen := map[[2]int]bool{}
	for _, rec := range c.msgs {
		if !rec.Uncounted {
			continue
		}
		d.recs = append(d.recs, rec)
		for b := rec.First; b >= 0 && b <= rec.Last && b < c.tree.Len(); b++ {
			n := c.tree.Block(b)
			e.tallyBlock(&d.t, n, c.tree.Block(b-1))
			d.nodes = append(d.nodes, n)
			for g := c.tree.Parent(n); g != nil; g = c.tree.Parent(g) {
				if !seen[[2]int{g.Level, g.Index}] {
					seen[[2]int{g.Level, g.Index}] = true
					e.countGist(&d.t, g)
				}
			}
		}
		e.tallySum(&d.t, c, rec)
		d.added = append(d.added, rec.Tokens) // the loaded header counts the estimate's
	}
	if len(d.recs) == 0 {
		return
	}
	// Gists in creation order: by the block their span ends at, lower
	// levels first.
	var gists []*tree.Node
	for key := range seen {
		gists = append(gists, c.tree.Node(key[0], key[1]))
	}
	slices.SortFunc(gists, func(a, b *tree.Node) int {
		if a.Last != b.Last {
			return a.Last - b.Last
		}
		return a.Level - b.Level
	})
	d.nodes = append(d.nodes, gists...)
	c.uncounted = d
}

// settle counts every collected text in one batch, writes the counts and
// runs the after functions. The tally is empty afterwards.
func (e *Engine) settle(t *tally) {
	if len(t.texts) > 0 {
		counts := tokens.CountAll(e.opts.Counter, t.texts)
		e.costMu.Lock()
		for i, n := range counts {
			for _, dst := range t.sinks[i] {
				*dst = n
			}
			if t.cached[i] {
				if len(e.costCache) > maxCostCache {
					clear(e.costCache)
				}
				e.costCache[t.texts[i]] = n
			}
		}
		e.costMu.Unlock()
	}
	for _, f := range t.then {
		f()
	}
	*t = tally{}
}

// countLead asks for the price of what the renderer writes on a line
// before a text (a header, an ellipsis): the whole line (lead and the text
// as rendered) counted after a line break, as it stands in the prompt,
// less the text as priced (alone), the line break and the marks that
// entryOverhead charges besides. Counted
// alone, a header would also pay for the leading space SentencePiece
// vocabularies add to every text, and for its final space, which in the
// prompt merges with the text's first word: about two tokens a line.
func (e *Engine) countLead(t *tally, lead, rendered, priced string, marks int, dst *int) {
	line, alone, br := new(int), new(int), new(int)
	t.count("\n"+lead+rendered, line)
	t.count(priced, alone)
	e.countHeader(t, "\n", br)
	t.after(func() { *dst = max(0, *line-*alone-*br-marks) })
}

// maxCostCache bounds the engine's cache of header and prompt costs.
const maxCostCache = 4096

// countGist asks for the costs of a new or rebuilt gist node: its text,
// headline, header and details header (the gist's summarizer only sizes
// them with the estimate).
func (e *Engine) countGist(t *tally, g *tree.Node) {
	t.count(g.Text, &g.Cost)
	// A headline is priced as its line ("~ " and the headline after a line
	// break; the break counted alone is one token in the prompt) less what
	// entryOverhead charges for the break and the marker.
	if g.Short != "" {
		line, br := new(int), new(int)
		t.count("\n~ "+g.Short, line)
		e.countHeader(t, "\n", br)
		t.after(func() { g.ShortCost = max(1, *line-*br+1-shortOverhead) })
	}
	e.countLead(t, gistHeader(g.Time, g.TimeEnd), g.Text, g.Text, 0, &g.Head)
	e.countHeader(t, detailsHeader(g), &g.DetailsHead)
}

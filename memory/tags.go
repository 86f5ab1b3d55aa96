package memory

import (
	"fmt"
	"slices"
	"time"

	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// MessageInfo describes a stored message.
type MessageInfo struct {
	Seq        int64     `json:"seq"`
	Parent     int64     `json:"parent"`
	Role       string    `json:"role"`
	Name       string    `json:"name,omitempty"`
	Time       time.Time `json:"time"`
	Text       string    `json:"text"`
	Tokens     int       `json:"tokens"`
	Tags       []string  `json:"tags,omitempty"`
	Partial    bool      `json:"partial,omitempty"`
	Superseded bool      `json:"superseded,omitempty"`
	// Origin is where a merged message came from; absent for the
	// context's own.
	Origin *Origin `json:"origin,omitempty"`
}

// Messages returns up to limit stored messages from seq from on, in
// arrival order, filtered by the policy for a caller holding scopes as a
// window would be: text and name are scanned and redacted (leading system
// prompts included, which windows never hold but the listing does), and a
// message an exclude rule or a whole-message tag withholds from the caller
// is replaced by WithheldText, its name dropped.
func (e *Engine) Messages(k Key, from int64, limit int, scopes []string) ([]MessageInfo, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	var out []MessageInfo
	for s := max(from, 0); s < int64(len(c.msgs)) && len(out) < limit; s++ {
		out = append(out, e.messageInfo(c, c.msgs[s], scopes))
	}
	return out, nil
}

// messageInfo is a stored message as a caller holding scopes may see it.
// The caller holds c.mu.
func (e *Engine) messageInfo(c *mctx, m *msgRecord, scopes []string) MessageInfo {
	text, exText, _ := e.opts.Policy.Filter(m.Text, scopes)
	name, exName, _ := e.opts.Policy.Filter(m.Name, scopes)
	if exText || exName || e.taggedWhole(c, m, scopes) {
		text, name = WithheldText, ""
	}
	return MessageInfo{Seq: m.Seq, Parent: m.Parent, Role: m.Role, Name: name, Time: time.UnixMilli(m.Time).UTC(),
		Text: text, Tokens: m.Tokens, Tags: m.Tags, Partial: m.Partial, Superseded: m.Superseded, Origin: m.Origin}
}

// WithheldText replaces a message the caller is not cleared to see.
const WithheldText = "[message withheld by policy]"

// taggedWhole reports whether m is tagged whole with a rule the caller is
// not cleared for, or a block of m carries a whole-block span the caller
// is not cleared for (a tag stored before Whole existed, or an exclude
// rule).
func (e *Engine) taggedWhole(c *mctx, m *msgRecord, scopes []string) bool {
	for _, r := range m.Whole {
		if !e.opts.Policy.Cleared(r, scopes) {
			return true
		}
	}
	for b := m.First; b >= 0 && b <= m.Last; b++ {
		n := c.tree.Block(b)
		for _, s := range n.Spans {
			if s.Start == 0 && s.End == len(n.Text) {
				if _, _, hits := e.opts.Policy.Apply(n.Text, []policy.Span{{Start: s.Start, End: s.End, Rule: s.Rule}}, scopes); len(hits) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// Tag adds and removes policy tags on a whole stored message: a tag names a
// policy rule whose action then applies to all of the message's text for
// callers not cleared for it. Gists above the message are rebuilt from the
// newly redacted text. A caller holding scopes may change only the tags of
// rules it is cleared for (ErrForbidden otherwise): whoever moves a rule's
// boundary must be allowed to see both sides of it. It returns the
// message's tags.
//
// Removing a tag lifts only what was tagged by hand, never what the rule
// finds: the tag leaves the message record (msgRecord.Whole) and its
// whole-block spans leave the blocks, and then the message is scanned
// again as a rescan does (rescanMessage), which gives back every span the
// rule's detector or pattern finds (one that covers a whole block, as in a
// message that is only an e-mail address, included) and an exclude rule's
// mark on every block of a message it matches. Whole-block spans stored
// by hand before tags were recorded on the message are lifted too, since
// nothing tells them from the rule's mark but the scan.
func (e *Engine) Tag(k Key, seq int64, add, remove []string, scopes []string) ([]string, error) {
	rules := e.opts.Policy.Rules()
	for _, t := range slices.Concat(add, remove) {
		if !slices.Contains(rules, t) {
			return nil, fmt.Errorf("%w: tag %q names no policy rule (have %v)", ErrBadTag, t, rules)
		}
		if !e.opts.Policy.Cleared(t, scopes) {
			return nil, fmt.Errorf("%w: changing tag %q needs one of the rule's allow_scopes", ErrForbidden, t)
		}
	}
	return retry(e, k, func() ([]string, error) { return e.tag(k, seq, add, remove) })
}

func (e *Engine) tag(k Key, seq int64, add, remove []string) ([]string, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if seq < 0 || seq >= int64(len(c.msgs)) {
		return nil, fmt.Errorf("%w: message %d", ErrNotFound, seq)
	}
	m := c.msgs[seq]
	c.msgBytes -= msgFootprint(m)
	m.Whole = slices.DeleteFunc(m.Whole, func(t string) bool { return slices.Contains(remove, t) })
	for _, t := range add {
		if !slices.Contains(m.Whole, t) {
			m.Whole = append(m.Whole, t)
		}
	}
	c.msgBytes += msgFootprint(m)
	// Lift the removed rules' whole-block spans, then scan again: what the
	// rules find comes back, the tags on the message (m.Whole) are given.
	// Every count is made at once, after the gists are rebuilt.
	var tl tally
	var blocks []*tree.Node
	for b := m.First; b >= 0 && b <= m.Last; b++ {
		n := c.tree.Block(b)
		spans := slices.DeleteFunc(slices.Clone(n.Spans), func(s tree.Span) bool {
			return isWholeSpan(n, s) && slices.Contains(remove, s.Rule)
		})
		if !sameSpans(spans, n.Spans) {
			e.respan(c, n, spans, &tl)
		}
		blocks = append(blocks, n)
	}
	e.rescanMessage(c, m, make([]bool, c.tree.Len()), &tl)
	gists := e.rebuildGists(c, blocks, &tl)
	e.settle(&tl)
	var kvs []store.KV
	for _, n := range append(blocks, gists...) {
		kvs = append(kvs, store.KV{Key: nodeKey(k, n.Level, n.Index), Value: mustJSON(n)})
	}
	defer e.account(c)
	kv, err := e.msgRecordKV(c, m)
	if err != nil {
		return nil, err
	}
	kvs = append(kvs, kv)
	if err := e.put(c, kvs...); err != nil {
		e.forget(k)
		c.stale = true
		return nil, fmt.Errorf("memory: store tags: %w", err)
	}
	return slices.Clone(m.Tags), nil
}

// respan gives block n new sensitive spans, with the tags and the cost
// they imply (a placeholder can cost more than what it replaces: the
// larger is budgeted: asked of t), and keeps c's footprint in step.
func (e *Engine) respan(c *mctx, n *tree.Node, spans []tree.Span, t *tally) {
	c.nodeBytes -= nodeFootprint(n, c.textShared(n))
	n.Spans = spans
	n.Cost = n.Tokens
	if len(spans) > 0 {
		red, _, _ := e.opts.Policy.Apply(n.Text, toPolicySpans(spans), nil)
		redCost := new(int)
		t.count(red, redCost)
		t.after(func() { n.Cost = max(n.Tokens, *redCost) })
	}
	n.Tags = nil
	for _, s := range spans {
		if !slices.Contains(n.Tags, s.Rule) {
			n.Tags = append(n.Tags, s.Rule)
		}
	}
	c.nodeBytes += nodeFootprint(n, c.textShared(n))
}

// rebuildGists rebuilds every gist above blocks whose spans (or, after an
// erasure, text) changed, from their children as they are now, bottom-up
// so that a parent summarizes its rebuilt children, and returns the
// rebuilt gists. Token counts and Merkle hashes are summed and hashed
// again: they change only when a child's text did. Their costs are asked
// of t; their token counts are summed again when it settles.
func (e *Engine) rebuildGists(c *mctx, blocks []*tree.Node, t *tally) []*tree.Node {
	dirty := map[[2]int]*tree.Node{}
	for _, n := range blocks {
		for p := c.tree.Parent(n); p != nil; p = c.tree.Parent(p) {
			dirty[[2]int{p.Level, p.Index}] = p
		}
	}
	keys := make([][2]int, 0, len(dirty))
	for key := range dirty {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	summarize := e.newTree(c.index) // only its summarizer is used
	out := make([]*tree.Node, 0, len(keys))
	for _, key := range keys {
		g := dirty[key]
		c.nodeBytes -= nodeFootprint(g, false)
		children := c.tree.Children(g)
		gs := summarize.Summarize(g.Level, children)
		g.Text, g.Short = gs.Text, gs.Short
		e.countGist(t, g)
		g.Tags, g.Tokens = nil, 0
		for _, ch := range children {
			g.Tokens += ch.Tokens
			for _, tag := range ch.Tags {
				if !slices.Contains(g.Tags, tag) {
					g.Tags = append(g.Tags, tag)
				}
			}
		}
		// Counts the tally makes (an erased block's) are summed again.
		sumGists(c, []*tree.Node{g})
		t.after(func() { sumGists(c, []*tree.Node{g}) })
		g.Hash = tree.GistHash(g.Level, children)
		c.nodeBytes += nodeFootprint(g, false)
		out = append(out, g)
	}
	return out
}

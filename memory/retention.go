package memory

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Retention: rules, from the configuration, that prune the raw text of old
// messages while their gists stay. Preview says what a rule would prune
// and save without changing anything; Prune applies it. A pruned message
// keeps its place, its chain hash (a client resending it still matches
// it), its gists and its token count; its text and each of its blocks'
// text become PrunedText, the block hashes and the gist hashes above them
// are recomputed (the tree verifies as before), the raw JSON and the
// blocks' embeddings are dropped, and a provenance record says what was
// pruned, when and by which rule, with the salted SHA-256 of each message's
// former text (saltedHash, as an erasure's). Unlike Erase (forget.go),
// which removes text everywhere, gists included, and rewrites the store
// file, a prune keeps the gists: it saves space, it does not hide.

// PrunedText is what a pruned block holds instead of its text.
const PrunedText = "[pruned]"

// ErrBadRule means a retention rule name matches no configured rule.
var ErrBadRule = fmt.Errorf("memory: no such retention rule")

// RetentionRule prunes the raw text of messages that match it.
type RetentionRule struct {
	// Name names the rule (provenance records it).
	Name string `json:"name" mapstructure:"name"`
	// OlderThanDays: messages stored more than this many days ago.
	OlderThanDays int `json:"older_than_days" mapstructure:"older_than_days"`
	// NeverExpanded: only messages no window ever showed a block of
	// verbatim (focus telemetry).
	NeverExpanded bool `json:"never_expanded" mapstructure:"never_expanded"`
}

// Validate reports what is wrong with a rule.
func (r RetentionRule) Validate() error {
	switch {
	case strings.TrimSpace(r.Name) == "":
		return fmt.Errorf("retention rule without a name")
	case r.OlderThanDays < 1:
		return fmt.Errorf("retention rule %q: older_than_days %d, want >= 1", r.Name, r.OlderThanDays)
	}
	return nil
}

// PrunePlan is what a rule prunes (Preview) or pruned (Prune).
type PrunePlan struct {
	// Rule is the rule's name.
	Rule string `json:"rule"`
	// Messages and Blocks count what is pruned; Tokens their raw tokens.
	Messages int `json:"messages"`
	Blocks   int `json:"blocks"`
	Tokens   int `json:"tokens"`
	// Bytes is the text (and raw JSON) the store no longer holds.
	Bytes int64 `json:"bytes_saved"`
	// Seqs are the first maxPlanSeqs messages' sequence numbers.
	Seqs []int64 `json:"seqs"`
	// Oldest and Newest are the times of the oldest and newest message pruned.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
	// Applied is set when the store changed.
	Applied bool `json:"applied"`
}

// maxPlanSeqs bounds the sequence numbers a plan lists.
const maxPlanSeqs = 50

// RetentionRules returns the configured rules.
func (e *Engine) RetentionRules() []RetentionRule { return slices.Clone(e.opts.Retention) }

// rule returns the configured rule called name.
func (e *Engine) rule(name string) (RetentionRule, error) {
	for _, r := range e.opts.Retention {
		if r.Name == name {
			return r, nil
		}
	}
	return RetentionRule{}, fmt.Errorf("%w %q", ErrBadRule, name)
}

// PreviewRetention says what rule name would prune in k now, changing nothing.
func (e *Engine) PreviewRetention(k Key, name string) (PrunePlan, error) {
	return e.retain(k, name, "", false)
}

// Prune applies rule name to k; caller is recorded in provenance.
func (e *Engine) Prune(k Key, name, caller string) (PrunePlan, error) {
	return e.retain(k, name, caller, true)
}

// retain plans rule name on k and, with apply, prunes what it found.
func (e *Engine) retain(k Key, name, caller string, apply bool) (PrunePlan, error) {
	r, err := e.rule(name)
	if err != nil {
		return PrunePlan{}, err
	}
	c, err := e.acquire(k, false)
	if err != nil {
		return PrunePlan{}, err
	}
	defer c.mu.Unlock()
	plan, seqs := e.planPrune(c, r)
	if !apply || len(seqs) == 0 {
		return plan, nil
	}
	if err := e.prune(c, seqs, r.Name, caller); err != nil {
		return PrunePlan{}, err
	}
	plan.Applied = true
	return plan, nil
}

// planPrune finds the messages rule r prunes: stored more than
// OlderThanDays ago, with blocks, not pruned yet, not pinned, and (with
// NeverExpanded) no block of which a window ever showed. The caller holds
// c.mu.
func (e *Engine) planPrune(c *mctx, r RetentionRule) (PrunePlan, []int64) {
	plan := PrunePlan{Rule: r.Name, Seqs: []int64{}}
	cutoff := e.opts.Now().Add(-time.Duration(r.OlderThanDays) * 24 * time.Hour).UnixMilli()
	c.telMu.Lock()
	defer c.telMu.Unlock()
	shown := func(m *msgRecord) bool {
		for b := m.First; b <= m.Last; b++ {
			if f := c.focus[nodeKey2{0, b}]; f != nil && f.Resident > 0 {
				return true
			}
		}
		return false
	}
	var seqs []int64
	for _, m := range c.msgs {
		if m.First < 0 || m.Pruned || m.Damaged || m.Time >= cutoff || c.pinnedWithin(m.First, m.Last) || (r.NeverExpanded && shown(m)) {
			continue
		}
		seqs = append(seqs, m.Seq)
		plan.Messages++
		plan.Blocks += m.Last - m.First + 1
		plan.Tokens += m.Tokens
		plan.Bytes += int64(len(m.Text))
		if len(plan.Seqs) < maxPlanSeqs {
			plan.Seqs = append(plan.Seqs, m.Seq)
		}
		t := time.UnixMilli(m.Time).UTC()
		if plan.Oldest.IsZero() || t.Before(plan.Oldest) {
			plan.Oldest = t
		}
		if t.After(plan.Newest) {
			plan.Newest = t
		}
	}
	return plan, seqs
}

// prune rewrites the messages seqs as pruned, with their blocks and the
// gists above them, and records it in provenance, in one store
// transaction. The caller holds c.mu.
func (e *Engine) prune(c *mctx, seqs []int64, rule, caller string) error {
	pcost := e.countCached(PrunedText)
	changed := map[[2]int]*tree.Node{}
	var kvs []store.KV
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	prov := ProvenanceRecord{Kind: provPrune, Time: e.opts.Now().UnixMilli(), Caller: caller, Reason: "retention rule " + rule,
		Salt: hex.EncodeToString(salt), FirstBlock: -1, LastBlock: -1}
	type msgUndo struct {
		m   *msgRecord
		old msgRecord
	}
	var undo []msgUndo
	for _, seq := range seqs {
		m := c.msgs[seq]
		undo = append(undo, msgUndo{m, *m})
		prov.Messages = append(prov.Messages, seq)
		prov.Hashes = append(prov.Hashes, saltedHash(salt, m.Text))
		if prov.FirstBlock < 0 || m.First < prov.FirstBlock {
			prov.FirstBlock = m.First
		}
		prov.LastBlock = max(prov.LastBlock, m.Last)
		c.msgBytes -= msgFootprint(m)
		text := strings.Repeat(PrunedText, m.Last-m.First+1)
		for b := m.First; b <= m.Last; b++ {
			old := c.tree.Block(b)
			c.nodeBytes -= nodeFootprint(old, c.textShared(old))
			n := *old
			off := (b - m.First) * len(PrunedText)
			n.Text, n.Cost, n.Spans, n.Tags = text[off:off+len(PrunedText)], pcost, nil, nil
			n.Hash = tree.BlockHash(&n)
			c.index.Rewrite(b, old.Text, n.Text)
			changed[[2]int{0, b}] = &n
			if b < len(c.vecs) {
				// The vector was the text's: an empty one scores nothing.
				c.vecs[b] = qvec.Vector{}
				kvs = append(kvs, store.KV{Key: vecKey(c.key, b), Value: string(qvec.Vector{}.Encode())})
			}
		}
		m.Text, m.Pruned, m.Tags = text, true, slices.Clone(m.Whole)
		c.msgBytes += msgFootprint(m)
		m.dropRaw()
		kvs = append(kvs, store.KV{Key: msgKey(c.key, seq), Value: mustJSON(msgDisk{m, nil})})
	}
	// The gists above stay as they are, but for their Merkle hashes, made
	// again bottom-up from their children's.
	node := func(l, i int) *tree.Node {
		if n := changed[[2]int{l, i}]; n != nil {
			return n
		}
		return c.tree.Node(l, i)
	}
	f := c.tree.Fanout()
	for l := 1; l < c.tree.Height(); l++ {
		parents := map[int]bool{}
		for k := range changed {
			if k[0] == l-1 && k[1]/f < c.tree.LevelLen(l) {
				parents[k[1]/f] = true
			}
		}
		for i := range parents {
			g := *c.tree.Node(l, i)
			kids := make([]*tree.Node, f)
			for j := range kids {
				kids[j] = node(l-1, i*f+j)
			}
			g.Hash = tree.GistHash(l, kids)
			changed[[2]int{l, i}] = &g
		}
	}
	nodes := make([]*tree.Node, 0, len(changed))
	for _, n := range changed {
		nodes = append(nodes, n)
		kvs = append(kvs, store.KV{Key: nodeKey(c.key, n.Level, n.Index), Value: mustJSON(n)})
	}
	kv, err := e.provenanceKV(c.key, prov)
	if err == nil {
		kvs = append(kvs, kv)
		err = e.put(c, kvs...)
	}
	if err != nil {
		// Nothing was stored: reload the context from the store next time.
		for _, u := range undo {
			*u.m = u.old
		}
		e.forget(c.key)
		c.stale = true
		return fmt.Errorf("memory: prune: %w", err)
	}
	c.tree.Replace(nodes)
	for _, n := range nodes {
		if n.Level == 0 {
			c.nodeBytes += nodeFootprint(n, true)
		}
	}
	e.account(c)
	return nil
}

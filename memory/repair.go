package memory

import (
	"strings"
	"time"

	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Repairing a torn context on load. Every multi-record write of the
// embedded store is whole or absent since it journals them (store's
// journal.go), but a file torn by an older version can hold a context whose
// tree does not match its messages: node 105 stored and 104 not, a message
// whose blocks were never written, blocks of a message that was not, a
// gist missing above full children, a header that counts the messages
// before the torn write. The messages are what the user sent and cannot be
// derived; the tree, the vectors, the focus telemetry and the header's
// counts are derived from them. So load checks the tree against the
// messages (treeMatches, linear and without hashing) and, when they
// disagree, rebuilds the tree from the messages (rebuildTree, as an import
// does), stores it in place of the old one and reads the context again.
// No stored message is dropped: a placeholder for an unreadable record gets
// back the text its blocks held.
//
// PostgreSQL writes every batch in one transaction, so its records cannot
// be torn this way; a torn file copied into it by `megacontext migrate` is
// repaired the same way on its first load.

// treeMatches reports whether c's restored tree is the one ingest built
// from c's messages, structurally: each level but the blocks holds exactly
// the gists its children fill; every message with blocks (First >= 0) owns
// the next ones, numbered as its parts, whose texts spell its text; no
// block is left over. A damaged message (decodeMessage) owns the blocks
// that name it, whatever they say. (Which messages have blocks is what
// their records say, as Verify reads them: the rebuild decides it anew
// with inTree.)
func (c *mctx) treeMatches() bool {
	f := c.tree.Fanout()
	top := c.tree.Height() - 1
	for l := 1; l <= top; l++ {
		if c.tree.LevelLen(l) != c.tree.LevelLen(l-1)/f {
			return false
		}
	}
	if c.tree.LevelLen(top) >= f { // a full level without the gist above it
		return false
	}
	next := 0 // the next block a message must start at
	for _, m := range c.msgs {
		if m.Damaged {
			for b := c.tree.Block(next); b != nil && b.Msg == m.Seq; b = c.tree.Block(next) {
				next++
			}
			continue
		}
		if m.First < 0 {
			continue
		}
		if m.First != next || m.Last < m.First || m.Last >= c.tree.Len() {
			return false
		}
		off := 0
		for b := m.First; b <= m.Last; b++ {
			n := c.tree.Block(b)
			if n.Msg != m.Seq || n.Part != b-m.First || !strings.HasPrefix(m.Text[off:], n.Text) {
				return false
			}
			off += len(n.Text)
		}
		if off != len(m.Text) {
			return false
		}
		next = m.Last + 1
	}
	return next == c.tree.Len()
}

// headerMatches reports whether c's header counts its messages (and their
// tokens, when no record is damaged: a damaged one's count is unknown).
func (c *mctx) headerMatches() bool {
	if c.rec.Messages != len(c.msgs) {
		return false
	}
	tokens := 0
	for _, m := range c.msgs {
		if m.Damaged {
			return true
		}
		tokens += m.Tokens
	}
	return c.rec.Tokens == tokens
}

// repairTree rebuilds c's tree from c's messages and stores it, with the
// messages whose blocks, counts or tags changed and the header, in place of
// the stored tree; the vectors and focus telemetry of the old tree's nodes
// are removed (the embedder computes the vectors again). why says what
// load found. c itself is left half-made: the caller reads the context
// again from the store.
func (e *Engine) repairTree(c *mctx, why string) error {
	start := time.Now()
	oldBlocks := c.tree.Len()
	e.log.Warn("stored context's tree does not match its messages (a write torn by an older version); rebuilding it from the messages",
		"tenant", c.key.Tenant, "context", c.key.Context, "why", why, "messages", len(c.msgs), "blocks", oldBlocks)
	before := make([]msgRecord, len(c.msgs))
	for i, m := range c.msgs {
		e.recoverDamaged(c, m)
		before[i] = *m
		m.First, m.Last, m.Tokens = -1, -1, 0
	}
	built := &mctx{key: c.key, byHash: map[string]int64{}, byRaw: map[rawKey]int64{}, kids: map[int64][]int64{}, index: lens.NewIndex()}
	built.tree = e.newTree(built.index)
	e.rebuildTree(built, c.msgs)

	rec := c.rec
	rec.Messages, rec.Tokens, rec.Tokenizer = len(c.msgs), 0, e.opts.Counter.Name()
	kvs := make([]store.KV, 0, 2*built.tree.Len()+2)
	for i, m := range c.msgs {
		rec.Tokens += m.Tokens
		b := before[i]
		if b.First == m.First && b.Last == m.Last && b.Tokens == m.Tokens && b.Text == m.Text && b.Role == m.Role && strings.Join(b.Tags, "\x00") == strings.Join(m.Tags, "\x00") {
			continue
		}
		kv, err := e.msgRecordKV(c, m)
		if err != nil {
			return err
		}
		kvs = append(kvs, kv)
	}
	for l := 0; l < built.tree.Height(); l++ {
		for i := 0; i < built.tree.LevelLen(l); i++ {
			kvs = append(kvs, store.KV{Key: nodeKey(c.key, l, i), Value: mustJSON(built.tree.Node(l, i))})
		}
	}
	kvs = append(kvs, store.KV{Key: headerKey(c.key), Value: mustJSON(rec)})
	// The old tree's records go first, then the new ones are written: a
	// crash in between leaves messages without blocks, which the next load
	// repairs again. Every message stays stored throughout.
	if _, err := e.st.Delete(nil, []string{recordPrefix(kindNode, c.key), recordPrefix(kindVector, c.key), recordPrefix(kindFocus, c.key)}); err != nil {
		return err
	}
	if e.shared != nil {
		// The deletion moved the context's version on.
		ctx, cancel := e.storeCtx()
		v, err := e.shared.Version(ctx, c.key.Tenant, c.key.Context)
		cancel()
		if err != nil {
			return err
		}
		c.version = v
	}
	if err := e.put(c, kvs...); err != nil {
		return err
	}
	e.log.Warn("stored context repaired: its tree was rebuilt from its messages", "tenant", c.key.Tenant, "context", c.key.Context,
		"messages", len(c.msgs), "blocks_before", oldBlocks, "blocks", built.tree.Len(), "took", time.Since(start))
	return nil
}

// recoverDamaged gives a placeholder of an unreadable message record
// (damagedMessage) the text, role and time of the blocks restored under
// its number, so that rebuilding the tree keeps what the message said,
// and its parent and chain hash when a child's hash proves them.
func (e *Engine) recoverDamaged(c *mctx, m *msgRecord) {
	if !m.Damaged || m.Text != "" {
		return
	}
	var text strings.Builder
	var first *tree.Node
	for _, b := range c.tree.Blocks() {
		if b.Msg != m.Seq {
			continue
		}
		if first == nil {
			first = b
		}
		text.WriteString(b.Text)
	}
	if first == nil || text.Len() == 0 {
		return
	}
	m.Text, m.Role, m.Time = text.String(), internRole(first.Role), first.Time
	// Its place in the chain too, when a child proves it: the parent is a
	// message before it (or none), and the chain hash that parent gives
	// is the one a child's stored hash follows from. A resent list then
	// matches the message again.
	for p := m.Seq - 1; p >= -1; p-- {
		prev := ""
		if p >= 0 {
			if c.msgs[p].Damaged {
				continue
			}
			prev = c.msgs[p].Hash
		}
		h := chainHash(prev, Message{Role: m.Role, Text: m.Text})
		for _, kid := range c.kids[m.Seq] {
			k := c.msgs[kid]
			if k.Damaged || k.Pruned || strings.Contains(k.Text, ErasedText) {
				continue
			}
			if chainHash(h, Message{Role: k.Role, Name: k.Name, Text: k.Text}) == k.Hash {
				m.Parent, m.Hash, m.Damaged, m.Superseded = p, h, false, k.Superseded
				return
			}
		}
	}
}

// repairHeader counts c's messages and their tokens into its header, which
// a write torn by an older version left counting fewer, and stores it.
func (e *Engine) repairHeader(c *mctx) {
	was := c.rec
	c.rec.Messages, c.rec.Tokens = len(c.msgs), 0
	for _, m := range c.msgs {
		c.rec.Tokens += m.Tokens
	}
	err := e.put(c, store.KV{Key: headerKey(c.key), Value: mustJSON(c.rec)})
	e.log.Warn("stored context header did not count its messages (a write torn by an older version); recounted", "tenant", c.key.Tenant, "context", c.key.Context,
		"messages_before", was.Messages, "messages", c.rec.Messages, "tokens_before", was.Tokens, "tokens", c.rec.Tokens, "store_err", err)
}

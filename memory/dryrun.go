package memory

// A dry run that answers for a live request must see memory as that
// request would: with its new messages ingested (their blocks shift the
// lens's statistics and may complete gists). It stages them in memory,
// assembles, and takes them back: checkpoint records what staging
// changes, rollback restores it.

// checkpoint is what a context's in-memory state was before a staged
// ingest.
type checkpoint struct {
	// blocks and msgs are the tree's and the message list's lengths.
	blocks, msgs int
	// rec is the context header.
	rec ctxRecord
	// superseded are the messages' superseded flags (a staged edit marks
	// the branch it replaces).
	superseded []bool
	// msgBytes and nodeBytes are the footprint sums (cache.go).
	msgBytes, nodeBytes int64
}

// checkpoint records c's state before a staged ingest.
func (c *mctx) checkpoint() checkpoint {
	cp := checkpoint{blocks: c.tree.Len(), msgs: len(c.msgs), rec: c.rec, superseded: make([]bool, len(c.msgs)), msgBytes: c.msgBytes, nodeBytes: c.nodeBytes}
	for i, m := range c.msgs {
		cp.superseded[i] = m.Superseded
	}
	return cp
}

// rollback takes c back to checkpoint cp: the staged messages, their
// blocks, gists and lens postings go, superseded flags and the header are
// restored.
func (c *mctx) rollback(cp checkpoint) {
	for i := len(c.msgs) - 1; i >= cp.msgs; i-- {
		m := c.msgs[i]
		delete(c.byHash, m.Hash)
		if !m.RawKey.IsZero() {
			delete(c.byRaw, m.RawKey)
		}
		// A staged message is the last child appended to its parent.
		if kids := c.kids[m.Parent]; len(kids) > 1 {
			c.kids[m.Parent] = kids[:len(kids)-1]
		} else {
			delete(c.kids, m.Parent)
		}
		c.msgs[i] = nil
	}
	c.msgs = c.msgs[:cp.msgs]
	for i, s := range cp.superseded {
		c.msgs[i].Superseded = s
	}
	c.index.Truncate(cp.blocks, func(b int) string { return c.tree.Block(b).Text })
	c.tree.Truncate(cp.blocks)
	c.rec = cp.rec
	c.msgBytes, c.nodeBytes = cp.msgBytes, cp.nodeBytes
}

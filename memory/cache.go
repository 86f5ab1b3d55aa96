// The cache of loaded MegaContexts, bounded in bytes. Each loaded context
// keeps a running estimate of the memory it holds (its footprint: message
// records, tree nodes and their texts, the lens index, vectors), updated as
// it grows; the engine sums them, and when the sum passes the budget it
// evicts idle contexts, least recently used first. An evicted context is
// read back from the store when next needed.
//
// The footprint is an estimate from counts and lengths, calibrated against
// the Go heap (TestFootprintTracksHeap); it does not cover the store, which
// (buntdb) keeps its whole file in memory besides.

package memory

import (
	"sort"
	"unsafe"

	"github.com/megacontext/megacontext/memory/tree"
)

// DefaultCacheBytes is the default Options.CacheBytes (memory.cache_bytes):
// 256 MiB, about eight 1M-token histories or a thousand of 30K tokens.
const DefaultCacheBytes = 256 << 20

// Approximate memory costs, in bytes, beyond the texts (64-bit Go).
const (
	// msgOverhead is a message record and its entries in the context's
	// slices and maps (by chain hash, by raw key, by parent), each with
	// the slack of growth.
	msgOverhead = int64(unsafe.Sizeof(msgRecord{})) + 160
	// nodeOverhead is a tree node and its pointer in its level.
	nodeOverhead = int64(unsafe.Sizeof(tree.Node{})) + 16
	// spanBytes and tagBytes are one sensitive span and one tag of a node.
	spanBytes = int64(unsafe.Sizeof(tree.Span{}))
	tagBytes  = 16
	// ctxOverhead is an empty loaded context.
	ctxOverhead = 2048
)

// msgFootprint is what a message record holds in memory.
func msgFootprint(m *msgRecord) int64 {
	return msgOverhead + int64(len(m.Hash)+len(m.Text)+len(m.Name)) + tagBytes*int64(len(m.Tags)+len(m.Whole))
}

// nodeFootprint is what a tree node holds in memory; a block whose text is
// a slice of its message's text (see shareText) holds none of its own.
func nodeFootprint(n *tree.Node, sharedText bool) int64 {
	b := nodeOverhead + int64(len(n.Short)) + spanBytes*int64(len(n.Spans)) + tagBytes*int64(len(n.Tags))
	if !sharedText {
		b += int64(len(n.Text))
	}
	return b
}

// vecFootprint is what one block vector holds.
func vecFootprint(dim int) int64 { return 40 + int64(dim) }

// footprint is the context's current estimate. The caller holds c.mu (or
// c is not published yet).
func (c *mctx) footprint() int64 {
	b := ctxOverhead + c.msgBytes + c.nodeBytes + c.index.Bytes() + c.telBytes.Load()
	if len(c.vecs) > 0 {
		b += int64(len(c.vecs)) * vecFootprint(len(c.vecs[0].Data))
	}
	return b
}

// account brings the engine's sum up to date with c's footprint after c
// changed, and evicts idle contexts when the sum passes the budget. The
// caller holds c.mu.
func (e *Engine) account(c *mctx) {
	delta := c.footprint() - c.bytes
	c.bytes += delta
	if c.stale {
		return // no longer counted
	}
	if e.cached.Add(delta) > e.opts.CacheBytes && e.opts.CacheBytes > 0 {
		e.mu.Lock()
		e.trimLocked(c)
		e.mu.Unlock()
	}
}

// CachedBytes returns the estimated memory the loaded contexts hold, what
// Options.CacheBytes bounds.
func (e *Engine) CachedBytes() int64 { return e.cached.Load() }

// LoadedContexts returns how many contexts are held in memory.
func (e *Engine) LoadedContexts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.loaded)
}

// trimLocked evicts idle contexts, least recently used first, while more
// than MaxLoaded are loaded or their footprints sum past CacheBytes. keep
// (the context being acquired) is never evicted, nor is a context in use:
// two live copies of one context would hand out the same sequence numbers.
// The caller holds e.mu.
func (e *Engine) trimLocked(keep *mctx) {
	over := func() bool {
		return len(e.loaded) > e.opts.MaxLoaded || (e.opts.CacheBytes > 0 && e.cached.Load() > e.opts.CacheBytes)
	}
	if !over() {
		return
	}
	type cand struct {
		id string
		c  *mctx
	}
	cands := make([]cand, 0, len(e.loaded))
	for id, c := range e.loaded {
		if c != keep {
			cands = append(cands, cand{id, c})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].c.used < cands[j].c.used })
	for _, cd := range cands {
		if !over() {
			return
		}
		if !cd.c.mu.TryLock() {
			continue
		}
		cd.c.stale = true
		e.cached.Add(-cd.c.bytes)
		cd.c.mu.Unlock()
		delete(e.loaded, cd.id)
		e.dropped++
	}
}

// Rescanning stored memory when the policy changes.
//
// Sensitive spans are found once, at ingest, and stored with each block,
// so that assembly filters without scanning. Memory stored under another
// policy (before a rule was added or a pattern widened, or before the
// detectors learned a new obfuscation: policy.DetectorVersion) would keep
// the spans of then, and recall what the policy now covers unredacted.
// So each context's header records the fingerprint of the policy its spans
// were found with (ctxRecord.Policy), and loading a context stored under
// another fingerprint rescans it, once:
//
//   - every stored message's text (content with its tool-call arguments)
//     and name is scanned with the engine's policy, as ingest scans them;
//   - each block gets the message's new spans clipped to it, the
//     whole-block spans of exclude rules the message now matches, of the
//     rules tagged on it whole (msgRecord.Whole) and of any whole-block
//     span it had (see below); its tags and cost follow;
//   - every gist above a block whose spans changed is rebuilt from the
//     newly redacted blocks (rebuildGists, as Tag does), headlines too;
//   - the changed blocks, gists and message records and the header with
//     the new fingerprint are stored in one batch.
//
// A span found now may cross the boundary of blocks cut before it was
// found (ingest never cuts inside a span: keepSpansWhole). Blocks are not
// cut again: their boundaries, hashes and the gists' Merkle hashes stay.
// The span is clipped to each block it touches instead, so that every byte
// of it is covered by a span of its rule in the block that holds that byte:
// each block shows a placeholder where its part of the value was, and
// neither block, rendered alone or summarized into a gist, shows any part
// of the value. Marking both blocks whole would hide as much, at the cost
// of up to two blocks of unrelated text.
//
// A rescan never lifts a whole-block span. Tags added through the admin
// API are recorded on the message (Whole) and given again, but contexts
// stored before Whole existed hold them only as whole-block spans, which a
// rescan cannot tell from an exclude rule's: both stay, and the admin
// API's tag removal lifts them. The spans a detector found and no longer
// finds (a rule removed, a false positive fixed) go.
//
// A rescan costs a scan of the whole context and the rebuild of the gists
// above what changed; it is paid on the first load after the policy
// changed, not on later loads or requests (BenchmarkRescan).

package memory

import (
	"slices"
	"strings"
	"time"

	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// rescan finds the spans of every stored message of c again with the
// engine's policy, updates the blocks, gists and message records that
// change and stores them with the engine's fingerprint in the header. c is
// being loaded: nobody else holds it. When the store refuses the batch,
// memory keeps the new spans and the header its old fingerprint, so that
// the next load rescans again.
func (e *Engine) rescan(c *mctx) {
	start := time.Now()
	// Every count of the rescan is made at once (one batch).
	var t tally
	msgs, blocks, gists := e.respanAll(c, &t)
	e.settle(&t)
	kvs := make([]store.KV, 0, len(msgs)+len(blocks)+len(gists)+1)
	for _, m := range msgs {
		kv, err := e.msgRecordKV(c, m)
		if err != nil {
			e.log.Error("storing a rescan failed; the next load rescans again", "tenant", c.key.Tenant, "context", c.key.Context, "err", err)
			return
		}
		kvs = append(kvs, kv)
	}
	for _, n := range slices.Concat(blocks, gists) {
		kvs = append(kvs, store.KV{Key: nodeKey(c.key, n.Level, n.Index), Value: mustJSON(n)})
	}
	rec := c.rec
	rec.Policy = e.policyPrint
	kvs = append(kvs, store.KV{Key: headerKey(c.key), Value: mustJSON(rec)})
	if err := e.put(c, kvs...); err != nil {
		e.log.Error("storing a rescan failed; the next load rescans again", "tenant", c.key.Tenant, "context", c.key.Context, "err", err)
		return
	}
	c.rec = rec
	e.log.Info("policy changed since the context was stored: rescanned", "tenant", c.key.Tenant, "context", c.key.Context,
		"messages", len(c.msgs), "retagged", len(msgs), "blocks", len(blocks), "gists", len(gists), "took", time.Since(start))
}

// respanAll finds the spans of every message of c again, and of the
// blocks no message claims (a damaged record's) alone, and rebuilds the
// gists above the blocks whose spans changed; the counts it needs are
// asked of t. It returns the messages whose tags changed, the blocks whose
// spans did and the rebuilt gists. A rescan stores them; an import, which
// never trusts the spans a bundle carries, stores the whole context.
func (e *Engine) respanAll(c *mctx, t *tally) (msgs []*msgRecord, blocks, gists []*tree.Node) {
	seen := make([]bool, c.tree.Len())
	for _, m := range c.msgs {
		retagged, changed := e.rescanMessage(c, m, seen, t)
		if retagged {
			msgs = append(msgs, m)
		}
		blocks = append(blocks, changed...)
	}
	for i, ok := range seen {
		if n := c.tree.Block(i); !ok && e.rescanBlock(c, n, nil, e.opts.Policy.Scan(n.Text), 0, t) {
			blocks = append(blocks, n)
		}
	}
	return msgs, blocks, e.rebuildGists(c, blocks, t)
}

// rescanMessage rescans one message: its blocks (marked in seen) get their
// new spans, and its tags are recomputed. It reports whether the message's
// tags changed and returns the blocks whose spans did.
func (e *Engine) rescanMessage(c *mctx, m *msgRecord, seen []bool, t *tally) (retagged bool, changed []*tree.Node) {
	spans := e.opts.Policy.Scan(m.Text)
	nameSpans := e.opts.Policy.Scan(m.Name)
	var kept []string // whole-block spans kept without a rule explaining them
	if m.First >= 0 {
		whole := e.wholeRules(m, spans, nameSpans)
		spelled := c.spells(m)
		off := 0
		for b := m.First; b <= m.Last && b < len(seen); b++ {
			n := c.tree.Block(b)
			seen[b] = true
			own, at := spans, off
			if !spelled { // a damaged message: each block on its own
				own, at = e.opts.Policy.Scan(n.Text), 0
			}
			if e.rescanBlock(c, n, whole, own, at, t) {
				changed = append(changed, n)
			}
			for _, s := range n.Spans {
				if isWholeSpan(n, s) && !slices.Contains(whole, s.Rule) && !slices.Contains(kept, s.Rule) {
					kept = append(kept, s.Rule)
				}
			}
			off += len(n.Text)
		}
	}
	tags := policy.Tags(slices.Concat(spans, nameSpans, wholeSpans(m.Whole), wholeSpans(kept)))
	if slices.Equal(tags, m.Tags) {
		return false, changed
	}
	c.msgBytes -= msgFootprint(m)
	m.Tags = tags
	c.msgBytes += msgFootprint(m)
	return true, changed
}

// rescanBlock gives block n, which starts at byte at of the text spans
// were found in, the whole-block spans of whole and of the whole-block
// spans it has (but those the scan finds again), then spans clipped to
// it (their costs asked of t). It reports whether they differ from what
// it had.
func (e *Engine) rescanBlock(c *mctx, n *tree.Node, whole []string, spans []policy.Span, at int, t *tally) bool {
	own := blockSpans(spans, at, at+len(n.Text))
	for _, s := range n.Spans {
		if isWholeSpan(n, s) && !slices.Contains(whole, s.Rule) && !slices.Contains(own, s) {
			whole = append(slices.Clip(whole), s.Rule)
		}
	}
	next := withWhole(whole, own, len(n.Text))
	if sameSpans(next, n.Spans) {
		return false
	}
	e.respan(c, n, next, t)
	return true
}

// isWholeSpan reports a span that covers all of block n's text: a
// whole-message tag, an exclude rule's mark, or a value as long as the
// block.
func isWholeSpan(n *tree.Node, s tree.Span) bool {
	return n.Text != "" && s.Start == 0 && s.End == len(n.Text)
}

// spells reports whether m's blocks, in order, are m's and spell its text,
// as ingest cut them (a damaged record may not).
func (c *mctx) spells(m *msgRecord) bool {
	off := 0
	for b := m.First; b <= m.Last; b++ {
		n := c.tree.Block(b)
		if n == nil || n.Msg != m.Seq || !strings.HasPrefix(m.Text[off:], n.Text) {
			return false
		}
		off += len(n.Text)
	}
	return off == len(m.Text)
}

// sameSpans reports whether a and b hold the same spans, in any order.
func sameSpans(a, b []tree.Span) bool {
	if len(a) != len(b) {
		return false
	}
	order := func(x, y tree.Span) int {
		if x.Start != y.Start {
			return x.Start - y.Start
		}
		if x.End != y.End {
			return x.End - y.End
		}
		return strings.Compare(x.Rule, y.Rule)
	}
	return slices.Equal(slices.SortedFunc(slices.Values(a), order), slices.SortedFunc(slices.Values(b), order))
}

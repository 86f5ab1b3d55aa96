package memory

import (
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/megacontext/megacontext/memory/store"
)

// ProvenanceRecord is one provenance record: something that happened to a
// context beyond ingest (a fork, a merge, an erasure). It is stored as the
// bundle line it is exported as, and never holds erased text.
type ProvenanceRecord struct {
	// Type is recProvenance.
	Type string `json:"type"`
	// Seq numbers the context's provenance records from 0.
	Seq int64 `json:"seq"`
	// Kind is provFork, provMerge, provForget or provPrune.
	Kind string `json:"kind"`
	// Time is when it happened (Unix ms); Caller who asked, Reason why.
	Time   int64  `json:"time"`
	Caller string `json:"caller,omitempty"`
	Reason string `json:"reason,omitempty"`
	// From is the other context: a fork's source, a merge's other side.
	From string `json:"from,omitempty"`
	// At is a fork's last message taken from the source.
	At *int64 `json:"at,omitempty"`
	// Messages are the messages concerned: merged in, or erased.
	Messages []int64 `json:"messages,omitempty"`
	// Salt is the random salt (hex) of an erasure's hashes.
	Salt string `json:"salt,omitempty"`
	// Hashes are "sha256:" and the hex SHA-256 of the salt and each
	// erased message's former text.
	Hashes []string `json:"hashes,omitempty"`
	// Match is the same hash of the literal an erasure matched.
	Match string `json:"match,omitempty"`
	// FirstBlock and LastBlock are the blocks added (merge) or rewritten
	// (forget), inclusive; FirstBlock is -1 for none.
	FirstBlock int `json:"first_block"`
	LastBlock  int `json:"last_block"`
}

// Provenance record kinds.
const (
	provFork   = "fork"
	provMerge  = "merge"
	provForget = "forget"
	// provPrune: a retention rule pruned messages' raw text (Reason names
	// the rule; Messages and Hashes what was pruned).
	provPrune = "prune"
)

// provenanceKV numbers p as k's next provenance record and returns the
// store record to write with the change it records.
func (e *Engine) provenanceKV(k Key, p ProvenanceRecord) (store.KV, error) {
	n := int64(0)
	if err := e.st.Scan(recordPrefix(kindProvenance, k), func(string, string) bool { n++; return true }); err != nil {
		return store.KV{}, err
	}
	p.Type, p.Seq = recProvenance, n
	return store.KV{Key: provKey(k, n), Value: mustJSON(p)}, nil
}

// SpanProvenance traces a block of a context (a span a window quotes) to
// where it came from.
type SpanProvenance struct {
	// Context is the context that holds the block.
	Context string `json:"context"`
	// Block is the block: its index, text (filtered for the caller),
	// position in its message and content hash.
	Block BlockInfo `json:"block"`
	// Message is the message the block belongs to (filtered for the caller).
	Message MessageInfo `json:"message"`
	// Thread is the conversation the message is part of: the sequence
	// numbers from its first message to it.
	Thread []int64 `json:"thread"`
	// Origin says whose the message is: "own", "merged" (from another
	// context: Origin.Context, its sequence number and time there),
	// "forked" (taken from the source of a fork, From), or "mounted" (the
	// context is a mount of the asking one).
	Origin SpanOrigin `json:"origin"`
	// Path is the Merkle path from the block to the top of the tree: each
	// gist above it, with its hash.
	Path []NodeRef `json:"path"`
	// Snapshot names the snapshots that hold the block: the one the context
	// was imported from and its last export, when the block is in them.
	Snapshot SnapshotRefs `json:"snapshot"`
	// Records are the provenance records that concern the message (its
	// fork, merge or erasure).
	Records []ProvenanceRecord `json:"records"`
}

// BlockInfo describes a block.
type BlockInfo struct {
	Index  int    `json:"index"`
	Part   int    `json:"part"`
	Text   string `json:"text"`
	Tokens int    `json:"tokens"`
	Hash   string `json:"hash"`
}

// NodeRef names a tree node and its Merkle hash.
type NodeRef struct {
	Level int    `json:"level"`
	Index int    `json:"index"`
	First int    `json:"first_block"`
	Last  int    `json:"last_block"`
	Hash  string `json:"hash"`
}

// SpanOrigin is where a message came from.
type SpanOrigin struct {
	// Kind is "own", "merged", "forked" or "mounted".
	Kind string `json:"kind"`
	// From is the context it came from (merged, forked, mounted).
	From string `json:"from,omitempty"`
	// Merged is the merged message's origin.
	Merged *Origin `json:"merged,omitempty"`
}

// SnapshotRefs are the snapshots a block is part of.
type SnapshotRefs struct {
	Imported *SnapshotEvent `json:"imported,omitempty"`
	Exported *SnapshotEvent `json:"exported,omitempty"`
}

// Provenance traces block of the context k for a caller holding scopes
// (texts are filtered as Messages filters them).
func (e *Engine) Provenance(k Key, block int, scopes []string) (SpanProvenance, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return SpanProvenance{}, err
	}
	defer c.mu.Unlock()
	b := c.tree.Block(block)
	if b == nil || b.Msg < 0 || b.Msg >= int64(len(c.msgs)) {
		return SpanProvenance{}, fmt.Errorf("%w: block %d (the context holds %d)", ErrNotFound, block, c.tree.Len())
	}
	m := c.msgs[b.Msg]
	p := SpanProvenance{Context: k.Context, Message: e.messageInfo(c, m, scopes), Origin: SpanOrigin{Kind: "own"},
		Path: []NodeRef{}, Records: []ProvenanceRecord{}}
	text, excluded, _ := e.opts.Policy.Apply(b.Text, toPolicySpans(b.Spans), scopes)
	if excluded || p.Message.Text == WithheldText {
		text = WithheldText
	}
	p.Block = BlockInfo{Index: b.Index, Part: b.Part, Text: text, Tokens: b.Tokens, Hash: hex.EncodeToString(b.Hash[:])}
	for s := m.Seq; s >= 0; s = c.msgs[s].Parent {
		p.Thread = append(p.Thread, s)
	}
	slices.Reverse(p.Thread)
	for n := c.tree.Parent(b); n != nil; n = c.tree.Parent(n) {
		p.Path = append(p.Path, NodeRef{Level: n.Level, Index: n.Index, First: n.First, Last: n.Last, Hash: hex.EncodeToString(n.Hash[:])})
	}
	var decodeErr error
	err = e.st.Scan(recordPrefix(kindProvenance, k), func(key, v string) bool {
		var r ProvenanceRecord
		if decodeErr = unmarshal(v, &r); decodeErr != nil {
			decodeErr = fmt.Errorf("decode %s: %w", key, decodeErr)
			return false
		}
		switch {
		case r.Kind == provFork && r.At != nil && m.Seq <= *r.At:
			p.Origin = SpanOrigin{Kind: "forked", From: r.From}
		case slices.Contains(r.Messages, m.Seq):
		default:
			return true
		}
		p.Records = append(p.Records, r)
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return SpanProvenance{}, fmt.Errorf("memory: provenance of %q: %w", k.Context, err)
	}
	if m.Origin != nil {
		p.Origin = SpanOrigin{Kind: "merged", From: m.Origin.Context, Merged: m.Origin}
	}
	// A snapshot holds the block as it is when the block was there then
	// and no erasure or prune rewrote it since.
	holds := func(ev *SnapshotEvent) bool {
		if ev == nil || block >= ev.Blocks {
			return false
		}
		for _, r := range p.Records {
			if (r.Kind == provForget || r.Kind == provPrune) && r.Time >= ev.Time {
				return false
			}
		}
		return true
	}
	snap := e.snapshotInfo(k)
	if holds(snap.Imported) {
		p.Snapshot.Imported = snap.Imported
	}
	if holds(snap.Exported) {
		p.Snapshot.Exported = snap.Exported
	}
	return p, nil
}

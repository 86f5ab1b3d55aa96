// Snapshots: a MegaContext exported as one .mcx bundle (memory/bundle) and
// imported back, here or in another store.
//
// What a bundle carries, in sections of this order:
//
//	bundle      the header: format, version, and the Derivation its tree was built with
//	context     created and updated times (the telemetry the store keeps today)
//	message     every message, superseded branches included: the source of truth
//	node        the gist tree, blocks and gists, with their Merkle hashes: derived data
//	telemetry   each node's focus telemetry (how often windows showed and opened it)
//	provenance  forks, merges and erasures the context went through
//
// Messages are the source of truth. The tree (block texts and boundaries,
// gists and headlines, token counts, policy spans) is derived: an importing
// engine whose Derivation equals the bundle's keeps it as it is, after
// checking it against the messages (every block's hash, every gist's Merkle
// hash, each message's blocks spelling its text); any other engine rebuilds
// it from the messages with its own block size, fan-out, gist lengths,
// tokenizer and policy. The lens index and the embeddings are never carried:
// they are rebuilt on load and in the background. Focus telemetry counts
// windows over the bundle's tree: it is kept with the tree, and dropped when
// the tree is rebuilt (its nodes are others then). Nothing local to one
// store is carried either (the context id, the root it was imported from,
// the last export), so that exporting an imported context gives back the
// root it was imported with.

package memory

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/jsondepth"
	"github.com/megacontext/megacontext/memory/bundle"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
	"github.com/megacontext/megacontext/tokens"
)

// Snapshot errors.
var (
	// ErrExists means an import targets a context that already exists.
	ErrExists = errors.New("memory: the context already exists")
	// ErrBadSnapshot means a bundle is intact but its content is not a
	// consistent MegaContext (bundle errors cover damage and tampering).
	ErrBadSnapshot = errors.New("memory: inconsistent snapshot")
)

// deriveVersion numbers the engine's ways of deriving the tree from
// messages (block splitting, gist extraction, span tagging): bump it when
// one changes, so that imports rebuild what older engines derived.
// 2: headlines weigh words by their rarity in the history and never glue
// messages together. 3: tool-call markers and machine-made ids are no key
// terms of headlines, nor salient in gists (memory/gist: opaque).
const deriveVersion = 3

// Derivation is what the tree derived from a context's messages depends
// on besides them.
type Derivation struct {
	// Version is the engine's derivation version.
	Version int `json:"version"`
	// BlockTokens is K, FanOut is F.
	BlockTokens int `json:"block_tokens"`
	Fanout      int `json:"fanout"`
	// GistTokens and ShortTokens cap gists and headlines.
	GistTokens  int `json:"gist_tokens"`
	ShortTokens int `json:"short_tokens"`
	// Tokenizer names the token counter.
	Tokenizer string `json:"tokenizer"`
	// Policy is the policy's fingerprint ("" for none).
	Policy string `json:"policy"`
}

// derivation is the engine's own Derivation.
func (e *Engine) derivation() Derivation {
	return Derivation{
		Version: deriveVersion, BlockTokens: e.opts.BlockTokens, Fanout: e.opts.Fanout,
		GistTokens: e.opts.GistTokens, ShortTokens: e.opts.ShortTokens,
		Tokenizer: e.opts.Counter.Name(), Policy: e.policyPrint,
	}
}

// derivationOf is the Derivation c's stored tree was built with: the
// engine's, but for the tokenizer its counts were made with when the
// context recorded it (ctxRecord.Tokenizer).
func (e *Engine) derivationOf(c *mctx) Derivation {
	d := e.derivation()
	if c.rec.Tokenizer != "" {
		d.Tokenizer = c.rec.Tokenizer
	}
	return d
}

// recordTokenizer records the engine's token counter as the one c's
// counts are made with, unless it is the estimate and c names another
// (a process that lost its upstream's tokenizer falls back to the
// estimate for a while; the context's counts are still the tokenizer's).
func (e *Engine) recordTokenizer(c *mctx) {
	if live := e.opts.Counter.Name(); c.rec.Tokenizer == "" || live != (tokens.Estimate{}).Name() {
		c.rec.Tokenizer = live
	}
}

// Record types of a bundle's sections, in their order.
const (
	recContext    = "context"
	recMessage    = "message"
	recNode       = "node"
	recTelemetry  = "telemetry"
	recProvenance = "provenance"
)

var sectionOrder = []string{bundle.TypeHeader, recContext, recMessage, recNode, recTelemetry, recProvenance}

// snapFocus is a bundle's telemetry record: one node's focus telemetry.
type snapFocus struct {
	Type  string `json:"type"`
	Level int    `json:"level"`
	Index int    `json:"index"`
	NodeFocus
}

// snapHeader is a bundle's header record.
type snapHeader struct {
	bundle.HeaderFields
	// Engine is the Derivation the bundle's tree was built with.
	Engine Derivation `json:"engine"`
}

// snapContext is a bundle's context record.
type snapContext struct {
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Updated int64  `json:"updated"`
}

// snapMessage is a bundle's message record: a stored message without
// what the tree derives (its block range and token count).
type snapMessage struct {
	Type   string `json:"type"`
	Seq    int64  `json:"seq"`
	Parent int64  `json:"parent"`
	Hash   string `json:"hash"`
	// RawKey and Extra are what the store knows of the client's bytes
	// for the message (see reconcile).
	RawKey     rawKey          `json:"raw_key,omitzero"`
	Extra      int             `json:"extra,omitempty"`
	Role       string          `json:"role"`
	Name       string          `json:"name,omitempty"`
	Text       string          `json:"text"`
	Raw        json.RawMessage `json:"raw,omitempty"`
	Time       int64           `json:"time"`
	Partial    bool            `json:"partial,omitempty"`
	Superseded bool            `json:"superseded,omitempty"`
	Tags       []string        `json:"tags,omitempty"`
	// Whole are the rules tagged on the whole message.
	Whole []string `json:"whole,omitempty"`
	// Origin is where a merged message came from.
	Origin *Origin `json:"origin,omitempty"`
	// Damaged marks a record the exporting store could not read back.
	Damaged bool `json:"damaged,omitempty"`
	// Pruned marks a message whose text a retention rule pruned.
	Pruned bool `json:"pruned,omitempty"`
	// Uncounted marks a message whose blocks carry the estimate's costs
	// until the next ingest counts them (an engine that keeps the tree
	// counts them then; one that rebuilds it counts everything anew).
	Uncounted bool `json:"uncounted,omitempty"`
}

// storedMsg is what only the store keeps of a message.
type storedMsg struct {
	raw    json.RawMessage
	rawKey rawKey
}

func toSnapMessage(m *msgRecord, st storedMsg) snapMessage {
	return snapMessage{Type: recMessage, Seq: m.Seq, Parent: m.Parent, Hash: m.Hash, RawKey: st.rawKey, Extra: m.Extra, Role: m.Role,
		Name: m.Name, Text: m.Text, Raw: st.raw, Time: m.Time, Partial: m.Partial, Superseded: m.Superseded, Tags: m.Tags, Whole: m.Whole, Origin: m.Origin, Damaged: m.Damaged,
		Pruned: m.Pruned, Uncounted: m.Uncounted}
}

// record returns the message record and the client's raw JSON.
func (s snapMessage) record() (*msgRecord, json.RawMessage) {
	return &msgRecord{Seq: s.Seq, Parent: s.Parent, Hash: s.Hash, RawKey: s.RawKey, Extra: s.Extra, Role: s.Role, Name: s.Name,
		Text: s.Text, Time: s.Time, Partial: s.Partial, Superseded: s.Superseded, Tags: s.Tags, Whole: s.Whole, Origin: s.Origin, Damaged: s.Damaged, Pruned: s.Pruned, Uncounted: s.Uncounted, First: -1, Last: -1,
		rawSaved: !s.RawKey.IsZero()}, s.Raw
}

// snapNode is a bundle's node record: a tree node with its hash in hex.
type snapNode struct {
	Type      string `json:"type"`
	Level     int    `json:"level"`
	Index     int    `json:"index"`
	First     int    `json:"first"`
	Last      int    `json:"last"`
	Tokens    int    `json:"tokens"`
	Text      string `json:"text"`
	Cost      int    `json:"cost"`
	Short     string `json:"short,omitempty"`
	ShortCost int    `json:"short_cost,omitempty"`
	Head      int    `json:"head,omitempty"`
	// DetailsHead and Join are tree.Node's (costs counted at ingest).
	DetailsHead int         `json:"details_head,omitempty"`
	Join        int         `json:"join,omitempty"`
	Hash        string      `json:"hash"`
	Msg         int64       `json:"msg"`
	Part        int         `json:"part,omitempty"`
	Role        string      `json:"role,omitempty"`
	Time        int64       `json:"time"`
	TimeEnd     int64       `json:"time_end"`
	Tags        []string    `json:"tags,omitempty"`
	Spans       []tree.Span `json:"spans,omitempty"`
}

func toSnapNode(n *tree.Node) snapNode {
	return snapNode{Type: recNode, Level: n.Level, Index: n.Index, First: n.First, Last: n.Last, Tokens: n.Tokens, Text: n.Text,
		Cost: n.Cost, Short: n.Short, ShortCost: n.ShortCost, Head: n.Head, DetailsHead: n.DetailsHead, Join: n.Join, Hash: hex.EncodeToString(n.Hash[:]), Msg: n.Msg,
		Part: n.Part, Role: n.Role, Time: n.Time, TimeEnd: n.TimeEnd, Tags: n.Tags, Spans: n.Spans}
}

func (s snapNode) node() (*tree.Node, error) {
	n := &tree.Node{Level: s.Level, Index: s.Index, First: s.First, Last: s.Last, Tokens: s.Tokens, Text: s.Text, Cost: s.Cost,
		Short: s.Short, ShortCost: s.ShortCost, Head: s.Head, DetailsHead: s.DetailsHead, Join: s.Join, Msg: s.Msg, Part: s.Part, Role: s.Role, Time: s.Time,
		TimeEnd: s.TimeEnd, Tags: s.Tags, Spans: s.Spans}
	h, err := hex.DecodeString(s.Hash)
	if err != nil || len(h) != len(n.Hash) {
		return nil, fmt.Errorf("node %d/%d: bad hash %q", s.Level, s.Index, s.Hash)
	}
	copy(n.Hash[:], h)
	return n, nil
}

// snapshotRecord is what this store knows about snapshots of a context
// (kindSnapshot; never exported).
type snapshotRecord struct {
	// Imported is the snapshot the context was imported from, if any.
	Imported *SnapshotEvent `json:"imported,omitempty"`
	// Exported is the context's last export.
	Exported *SnapshotEvent `json:"exported,omitempty"`
}

// SnapshotEvent is one import or export of a context.
type SnapshotEvent struct {
	// Root is the bundle's root hash (hex); Signer its signer's key (base64).
	Root   string `json:"root"`
	Signer string `json:"signer,omitempty"`
	// Time is when it happened (Unix ms); Caller who asked.
	Time   int64  `json:"time"`
	Caller string `json:"caller,omitempty"`
	// Messages and Blocks are how many the snapshot covered: the context's
	// first Messages messages and Blocks blocks are the snapshot's.
	Messages int `json:"messages"`
	Blocks   int `json:"blocks"`
	// Rebuilt says an import rebuilt the derived data (another engine).
	Rebuilt bool `json:"rebuilt,omitempty"`
}

// ExportOptions configure ExportBundle.
type ExportOptions struct {
	// SigningKey, when set, signs the bundle's root.
	SigningKey ed25519.PrivateKey
	// Scopes are the caller's clearances: a context holding spans of a
	// policy rule the caller is not cleared for is not exported to it
	// (ErrForbidden), since a bundle carries the raw text.
	Scopes []string
	// Operator skips that check: the data folder's owner (the CLI).
	Operator bool
	// Caller names who exports, for the store's record of the export.
	Caller string
}

// ExportBundle writes the context k as a bundle to w and returns its root.
// The context is locked while it is written (requests to it wait), so w
// should be fast: a file, not a slow network peer.
func (e *Engine) ExportBundle(k Key, w io.Writer, opts ExportOptions) (bundle.Root, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return bundle.Root{}, err
	}
	defer c.mu.Unlock()
	if !opts.Operator {
		if err := e.checkCleared(c, opts.Scopes); err != nil {
			return bundle.Root{}, err
		}
	}
	d := e.derivationOf(c)
	if c.uncounted != nil {
		// A stored reply's costs are counted before they travel, with
		// the tokenizer the rest was counted with: another would give
		// another root.
		if live := e.opts.Counter.Name(); live != d.Tokenizer {
			return bundle.Root{}, fmt.Errorf("%w: the costs of the last stored reply are still to be counted with the context's tokenizer %q, and this process counts with %q (start it with the upstream reachable, or --vocab, to export the same root)", ErrTokenizerUnavailable, d.Tokenizer, live)
		}
		kvs, err := e.countDeferred(c)
		if err == nil {
			err = e.put(c, kvs...)
		}
		if err != nil {
			e.forget(k)
			c.stale = true
			return bundle.Root{}, fmt.Errorf("memory: export: %w", err)
		}
	}
	bw := bundle.NewWriter(w, opts.SigningKey)
	bw.Write(snapHeader{HeaderFields: bundle.Header(), Engine: d})
	bw.Write(snapContext{Type: recContext, Created: c.rec.Created, Updated: c.rec.Updated})
	// Messages as memory holds them (damaged records recovered as far as
	// they could be), with what only the store keeps.
	stored, err := e.storedMessages(c)
	if err != nil {
		return bundle.Root{}, fmt.Errorf("memory: export: %w", err)
	}
	for i, m := range c.msgs {
		bw.Write(toSnapMessage(m, stored[i]))
	}
	for l := 0; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			bw.Write(toSnapNode(c.tree.Node(l, i)))
		}
	}
	// Telemetry as stored (the keeper writes it every few seconds).
	var werr error
	err = e.st.Scan(recordPrefix(kindFocus, k), func(key, v string) bool {
		l, i, ok := parseFocusKey(key)
		f := snapFocus{Type: recTelemetry, Level: l, Index: i}
		if !ok || unmarshal(v, &f.NodeFocus) != nil || c.tree.Node(l, i) == nil {
			return true // unreadable telemetry starts afresh, as on load
		}
		werr = bw.Write(f)
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return bundle.Root{}, fmt.Errorf("memory: export telemetry: %w", err)
	}
	err = e.st.Scan(recordPrefix(kindProvenance, k), func(_, v string) bool {
		// Stored provenance records are bundle lines already.
		werr = bw.WriteLine([]byte(v))
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return bundle.Root{}, fmt.Errorf("memory: export provenance: %w", err)
	}
	root, err := bw.Close()
	if err != nil {
		return bundle.Root{}, fmt.Errorf("memory: export: %w", err)
	}
	// Remember the export (the provenance of spans names it); a failure
	// to do so does not undo a written bundle.
	snap := e.snapshotInfo(k)
	snap.Exported = &SnapshotEvent{Root: root.String(), Signer: root.SignerString(), Time: e.opts.Now().UnixMilli(), Caller: opts.Caller,
		Messages: len(c.msgs), Blocks: c.tree.Len()}
	if err := e.st.Put(store.KV{Key: singleKey(kindSnapshot, k), Value: mustJSON(snap)}); err != nil {
		e.log.Warn("recording an export failed", "context", k.Context, "err", err)
	}
	return root, nil
}

// checkCleared refuses a caller not cleared for a policy rule whose spans
// the context holds.
func (e *Engine) checkCleared(c *mctx, scopes []string) error {
	seen := map[string]bool{}
	for _, m := range c.msgs {
		for _, t := range m.Tags {
			if seen[t] {
				continue
			}
			seen[t] = true
			if _, _, hits := e.opts.Policy.Apply("x", []policy.Span{{Start: 0, End: 1, Rule: t}}, scopes); len(hits) > 0 {
				return fmt.Errorf("%w: the context holds spans of policy rule %q, which this caller may not read", ErrForbidden, t)
			}
		}
	}
	return nil
}

// snapshotInfo returns the store's snapshot facts about k (zero if none).
func (e *Engine) snapshotInfo(k Key) snapshotRecord {
	var s snapshotRecord
	if v, ok, err := e.st.Get(singleKey(kindSnapshot, k)); err == nil && ok {
		if err := unmarshal(v, &s); err != nil {
			e.log.Warn("undecodable snapshot record", "context", k.Context, "err", err)
		}
	}
	return s
}

// ImportOptions configure ImportBundle.
type ImportOptions struct {
	// Trusted, when not empty, requires a signature by one of these keys.
	Trusted []ed25519.PublicKey
	// Caller names who imports, for the store's record of the import.
	Caller string
	// MaxRecordBytes bounds one record; 0 uses the bundle default.
	MaxRecordBytes int
}

// ImportResult describes an import.
type ImportResult struct {
	// Root is the bundle's verified root.
	Root bundle.Root
	// Messages and Blocks count what was stored.
	Messages int `json:"messages"`
	Blocks   int `json:"blocks"`
	// Rebuilt says the derived data was rebuilt, and Why.
	Rebuilt bool   `json:"rebuilt"`
	Why     string `json:"why,omitempty"`
}

// bundleContent is a bundle read and checked, not stored yet.
type bundleContent struct {
	header  snapHeader
	ctx     snapContext
	msgs    []*msgRecord
	raws    []json.RawMessage
	nodes   [][]*tree.Node
	focus   []snapFocus
	prov    []string
	hasCtx  bool
	section int
}

// ImportBundle reads a bundle from r into the new context k. Every hash,
// the signature and the content's consistency are checked before anything
// is stored; a bundle that fails any check leaves nothing behind, and so
// does an import that fails while storing (a crash included: Open removes
// what an interrupted import wrote). The derived data is kept when this
// engine derives it as the bundle's did, else rebuilt from the messages.
func (e *Engine) ImportBundle(k Key, r io.Reader, opts ImportOptions) (ImportResult, error) {
	c, err := e.acquire(k, true)
	if err != nil {
		return ImportResult{}, err
	}
	defer c.mu.Unlock()
	if len(c.msgs) > 0 || c.rec.Created != 0 {
		return ImportResult{}, fmt.Errorf("%w: %q (delete it first, or import under another id)", ErrExists, k.Context)
	}
	// c is a fresh context: whatever happens, the next request loads k
	// from the store.
	defer func() {
		e.forget(k)
		c.stale = true
	}()
	st, root, err := e.readBundle(r, opts)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Root: root, Messages: len(st.msgs)}
	built := &mctx{key: k, byHash: map[string]int64{}, byRaw: map[rawKey]int64{}, kids: map[int64][]int64{}, index: lens.NewIndex()}
	built.tree = e.newTree(built.index)
	if mine := e.derivation(); st.header.Engine != mine {
		if st.header.Engine.Tokenizer != mine.Tokenizer && tokens.Unavailable(e.opts.Counter) {
			// Rebuilding now would recount the bundle's exact counts with
			// the estimate this process falls back to while its own
			// tokenizer is out of reach, and keep them for good.
			return ImportResult{}, fmt.Errorf("%w: the bundle was counted with %q, and this process cannot reach its own tokenizer now (it counts with %q until the upstream answers); nothing was stored: import with the upstream reachable, or --vocab, or upstream.tokenize: estimate to rebuild with the estimate", ErrTokenizerUnavailable, st.header.Engine.Tokenizer, mine.Tokenizer)
		}
		res.Rebuilt, res.Why = true, derivationChange(st.header.Engine, mine)
		e.rebuildTree(built, st.msgs)
	} else if err := e.adoptTree(built, st); err != nil {
		return ImportResult{}, err
	} else {
		// The bundle's spans are never trusted, whatever policy its header
		// names: anyone can write a bundle that claims this engine's
		// policy and carries no span for a secret. The messages are
		// scanned again as a rescan does, and the gists above what changed
		// rebuilt, before anything is stored.
		var t tally
		e.respanAll(built, &t)
		e.settle(&t)
	}
	res.Blocks = built.tree.Len()
	snap := snapshotRecord{Imported: &SnapshotEvent{Root: root.String(), Signer: root.SignerString(), Time: e.opts.Now().UnixMilli(),
		Caller: opts.Caller, Messages: len(st.msgs), Blocks: built.tree.Len(), Rebuilt: res.Rebuilt}}
	if err := e.storeImport(k, built, st, snap, res.Rebuilt); err != nil {
		return ImportResult{}, err
	}
	return res, nil
}

// readBundle reads and verifies a whole bundle into memory.
func (e *Engine) readBundle(r io.Reader, opts ImportOptions) (*bundleContent, bundle.Root, error) {
	br := bundle.NewReader(r, bundle.ReadOptions{Trusted: opts.Trusted, MaxRecordBytes: opts.MaxRecordBytes})
	st := &bundleContent{}
	// A record that does not decode is reported only once the whole bundle
	// proved intact: damage is damage, whatever record it hit first.
	var bad error
	for {
		typ, line, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bundle.Root{}, err
		}
		if bad == nil {
			if err := st.add(typ, line); err != nil {
				bad = fmt.Errorf("%w: %v", ErrBadSnapshot, err)
				st = &bundleContent{} // what was decoded is of no use now
			}
		}
	}
	if bad != nil {
		return nil, bundle.Root{}, bad
	}
	root, _ := br.Root()
	if !st.hasCtx {
		return nil, bundle.Root{}, fmt.Errorf("%w: no context record", ErrBadSnapshot)
	}
	return st, root, nil
}

// add decodes one record, checking that it is canonical and in order.
func (st *bundleContent) add(typ string, line []byte) error {
	rank := slices.Index(sectionOrder, typ)
	if rank < 0 {
		return fmt.Errorf("unknown record type %q", typ)
	}
	if rank < st.section {
		return fmt.Errorf("a %q record after the %q section", typ, sectionOrder[st.section])
	}
	st.section = rank
	// A message's raw JSON nests one level below its record.
	if jsondepth.Depth(line, jsondepth.Limit+2) > jsondepth.Limit+1 {
		return fmt.Errorf("a %q record nests deeper than %d levels", typ, jsondepth.Limit+1)
	}
	switch typ {
	case bundle.TypeHeader:
		return bundle.Canonical(line, &st.header)
	case recContext:
		if st.hasCtx {
			return errors.New("two context records")
		}
		st.hasCtx = true
		return bundle.Canonical(line, &st.ctx)
	case recMessage:
		var m snapMessage
		if err := bundle.Canonical(line, &m); err != nil {
			return fmt.Errorf("message %d: %w", len(st.msgs), err)
		}
		if m.Seq != int64(len(st.msgs)) || m.Parent < -1 || m.Parent >= m.Seq || m.Role == "" {
			return fmt.Errorf("message %d: sequence %d, parent %d, role %q", len(st.msgs), m.Seq, m.Parent, m.Role)
		}
		rec, raw := m.record()
		st.msgs = append(st.msgs, rec)
		st.raws = append(st.raws, raw)
	case recNode:
		var s snapNode
		if err := bundle.Canonical(line, &s); err != nil {
			return fmt.Errorf("node: %w", err)
		}
		n, err := s.node()
		if err != nil {
			return err
		}
		if n.Level == len(st.nodes) {
			st.nodes = append(st.nodes, nil)
		}
		if n.Level >= len(st.nodes) || n.Index != len(st.nodes[n.Level]) {
			return fmt.Errorf("node %d/%d out of order", n.Level, n.Index)
		}
		st.nodes[n.Level] = append(st.nodes[n.Level], n)
	case recTelemetry:
		var f snapFocus
		if err := bundle.Canonical(line, &f); err != nil {
			return fmt.Errorf("telemetry: %w", err)
		}
		if n := len(st.focus); n > 0 {
			if p := st.focus[n-1]; f.Level < p.Level || (f.Level == p.Level && f.Index <= p.Index) {
				return fmt.Errorf("telemetry of node %d/%d out of order", f.Level, f.Index)
			}
		}
		st.focus = append(st.focus, f)
	case recProvenance:
		var p ProvenanceRecord
		if err := bundle.Canonical(line, &p); err != nil {
			return fmt.Errorf("provenance: %w", err)
		}
		if p.Seq != int64(len(st.prov)) {
			return fmt.Errorf("provenance record %d has sequence %d", len(st.prov), p.Seq)
		}
		st.prov = append(st.prov, string(line))
	}
	return nil
}

// derivationChange says why derived data is rebuilt.
func derivationChange(theirs, mine Derivation) string {
	var why []string
	add := func(what string, a, b any) {
		if a != b {
			why = append(why, fmt.Sprintf("%s %v -> %v", what, a, b))
		}
	}
	add("derivation version", theirs.Version, mine.Version)
	add("block_tokens", theirs.BlockTokens, mine.BlockTokens)
	add("fanout", theirs.Fanout, mine.Fanout)
	add("gist_tokens", theirs.GistTokens, mine.GistTokens)
	add("short_tokens", theirs.ShortTokens, mine.ShortTokens)
	add("tokenizer", theirs.Tokenizer, mine.Tokenizer)
	if theirs.Policy != mine.Policy {
		why = append(why, "policy rules differ")
	}
	return fmt.Sprint(why)
}

// inTree reports which messages have blocks: every message with text but
// the leading system prompts of a thread (system or developer messages
// whose ancestors all are too), as ingest decides.
func inTree(msgs []*msgRecord) []bool {
	out := make([]bool, len(msgs))
	leading := make([]bool, len(msgs))
	for i, m := range msgs {
		leading[i] = isLeadingRole(m.Role) && (m.Parent < 0 || leading[m.Parent])
		out[i] = !leading[i] && m.Text != ""
	}
	return out
}

// rebuildTree derives the tree from the messages with this engine.
func (e *Engine) rebuildTree(c *mctx, msgs []*msgRecord) {
	// The index only weighs the gists' words while the tree is built (as
	// a live ingest does); the imported context is loaded afresh.
	defer func() { c.index = nil }()
	// Every count is made at once, when the tree is built.
	var t tally
	var nodes []*tree.Node
	emit := func(n *tree.Node) { nodes = append(nodes, n) }
	for i, ok := range inTree(msgs) {
		m := msgs[i]
		if ok {
			e.addBlocks(c, m, &t, emit)
		} else {
			e.tagUnblocked(m, &t)
		}
		m.Uncounted = false
		c.addMsg(m)
	}
	e.settle(&t)
	sumGists(c, nodes)
}

// adoptTree takes the bundle's tree after checking it against the
// messages: the blocks of each message in the tree spell its text, in
// order; every hash is the one its content gives; every gist covers the
// children the fan-out gives it.
func (e *Engine) adoptTree(c *mctx, st *bundleContent) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	var blocks []*tree.Node
	if len(st.nodes) > 0 {
		blocks = st.nodes[0]
	}
	next := 0
	for i, ok := range inTree(st.msgs) {
		m := st.msgs[i]
		if !ok {
			if m.Text != "" {
				m.Tokens = e.countCached(m.Text)
			}
			c.addMsg(m)
			continue
		}
		m.First = next
		pos := 0 // how much of the text the blocks spelled
		for ; next < len(blocks) && blocks[next].Msg == m.Seq; next++ {
			b := blocks[next]
			if b.Part != next-m.First || b.Role != m.Role || b.Time != m.Time || b.TimeEnd != b.Time || b.First != next || b.Last != next {
				return bad("block %d does not belong where it is (message %d, part %d)", next, b.Msg, b.Part)
			}
			if tree.BlockHash(b) != b.Hash {
				return bad("block %d: its hash does not match its content", next)
			}
			// Only an erasure leaves a block empty, never a message's first.
			if (b.Text == "" && b.Part == 0) || !strings.HasPrefix(m.Text[pos:], b.Text) {
				return bad("block %d does not spell its message's text", next)
			}
			pos += len(b.Text)
			m.Tokens += b.Tokens + b.Join
		}
		if next == m.First || pos != len(m.Text) {
			return bad("the blocks of message %d do not spell its text", m.Seq)
		}
		m.Last = next - 1
		c.addMsg(m)
	}
	if next != len(blocks) {
		return bad("block %d belongs to no message in order", next)
	}
	f := e.opts.Fanout
	for l, level := range st.nodes {
		if l > 0 {
			below := st.nodes[l-1]
			if len(level) != len(below)/f {
				return bad("level %d holds %d gists, its %d children make %d", l, len(level), len(below), len(below)/f)
			}
			for i, g := range level {
				kids := below[i*f : (i+1)*f]
				tokens := 0
				for _, kid := range kids {
					tokens += kid.Tokens
				}
				if g.First != kids[0].First || g.Last != kids[f-1].Last || g.Msg != kids[0].Msg || g.Time != kids[0].Time ||
					g.TimeEnd != kids[f-1].TimeEnd || g.Tokens != tokens || tree.GistHash(l, kids) != g.Hash {
					return bad("gist %d/%d does not cover its children", l, i)
				}
			}
		}
		for _, n := range level {
			if err := c.tree.Restore(n); err != nil {
				return bad("%v", err)
			}
		}
	}
	if n := len(st.nodes); n > 0 && len(st.nodes[n-1]) >= f {
		return bad("the top level holds %d nodes: a level above it is missing", len(st.nodes[n-1]))
	}
	return nil
}

// importBatch is how many records one store transaction of a new
// context (an import, a fork) writes: big enough to amortize a commit, small enough that buntdb's
// write buffer stays small.
const importBatch = 4096

// storeImport writes an imported context with storeNew.
func (e *Engine) storeImport(k Key, c *mctx, st *bundleContent, snap snapshotRecord, rebuilt bool) error {
	// Adopted or rebuilt, the tree's spans are this engine's policy's.
	rec := ctxRecord{Created: st.ctx.Created, Updated: st.ctx.Updated, Messages: len(c.msgs), Policy: e.policyPrint, Tokenizer: e.opts.Counter.Name()}
	kvs := make([]store.KV, 0, len(c.msgs)+2*c.tree.Len()+len(st.prov))
	for i, m := range c.msgs {
		v := mustJSON(msgDisk{m, st.raws[i]})
		rec.Tokens += m.Tokens
		rec.Bytes += int64(len(v))
		kvs = append(kvs, store.KV{Key: msgKey(k, m.Seq), Value: v})
	}
	for l := 0; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			kvs = append(kvs, store.KV{Key: nodeKey(k, l, i), Value: mustJSON(c.tree.Node(l, i))})
		}
	}
	if !rebuilt {
		// Telemetry counts windows over the bundle's tree: kept with it.
		for _, f := range st.focus {
			if c.tree.Node(f.Level, f.Index) != nil {
				kvs = append(kvs, store.KV{Key: focusKey(k, f.Level, f.Index), Value: mustJSON(f.NodeFocus)})
			}
		}
	}
	for i, p := range st.prov {
		kvs = append(kvs, store.KV{Key: provKey(k, int64(i)), Value: p})
	}
	return e.storeNew(k, kvs, store.KV{Key: headerKey(k), Value: mustJSON(rec)}, store.KV{Key: singleKey(kindSnapshot, k), Value: mustJSON(snap)})
}

// recoverImports removes what interrupted imports left: the records of a
// context whose import marker has no header, and markers whose import
// completed.
func (e *Engine) recoverImports() error {
	prefix := singlePrefix(kindImport)
	var keys []Key
	err := e.st.Scan(prefix, func(key, _ string) bool {
		if k, ok := parseSingleKey(key); ok {
			keys = append(keys, k)
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, found, err := e.st.Get(headerKey(k)); err != nil {
			return err
		} else if found {
			_, err = e.st.Delete([]string{singleKey(kindImport, k)}, nil)
			if err != nil {
				return err
			}
			continue
		}
		e.log.Warn("removing an interrupted import", "tenant", k.Tenant, "context", k.Context)
		if err := e.deleteContext(k); err != nil {
			return err
		}
	}
	return nil
}

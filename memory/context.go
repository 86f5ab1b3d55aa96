package memory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Message is one chat message as the engine sees it.
type Message struct {
	// Role is system, developer, user, assistant or tool.
	Role string
	// Name is the optional participant name.
	Name string
	// Text is what memory keeps and searches: the content text, with tool
	// calls and non-text parts flattened into text.
	Text string
	// Raw is the original JSON object of the message, kept byte for byte.
	Raw json.RawMessage
	// Extra is tokens the upstream spends on the message beyond Text
	// (images, tool-call framing); it only affects budgets.
	Extra int
}

// msgRecord is a stored message as memory holds it: everything of the
// message record but the client's raw JSON, which only the store keeps
// (msgDisk).
type msgRecord struct {
	Seq    int64 `json:"seq"`
	Parent int64 `json:"parent"`
	// Hash is the chain hash (chainHash) of the message and its thread.
	Hash string `json:"hash"`
	// RawKey is the raw key (rawKey) of the client's bytes for the message;
	// zero when unknown (replies until the client resends them, records
	// written before raw keys).
	RawKey rawKey `json:"rk,omitzero"`
	// Extra is Message.Extra, known when RawKey is set.
	Extra      int    `json:"extra,omitempty"`
	Role       string `json:"role"`
	Name       string `json:"name,omitempty"`
	Text       string `json:"text"`
	Time       int64  `json:"time"`
	Partial    bool   `json:"partial,omitempty"`
	Superseded bool   `json:"superseded,omitempty"`
	// Pruned marks a message whose raw text a retention rule pruned
	// (retention.go): Text is PrunedText once per block.
	Pruned bool `json:"pruned,omitempty"`
	// Damaged marks a record that could not be read back (see
	// decodeMessage): a placeholder, or one whose chain hash was lost.
	Damaged bool `json:"damaged,omitempty"`
	// Tags are the policy rules whose spans the message holds (its text and
	// its name), and the rules tagged on the whole message.
	Tags []string `json:"tags,omitempty"`
	// Whole are the rules tagged on the whole message through Tag. Blocks
	// carry them as whole-block spans too; a message without blocks (a
	// leading system prompt) has only this.
	Whole []string `json:"whole,omitempty"`
	// Origin is where a merged message came from; nil for the context's own.
	Origin *Origin `json:"origin,omitempty"`
	// First and Last are the message's block range; First = -1 when it has
	// no blocks (leading system prompts, empty messages).
	First int `json:"first"`
	Last  int `json:"last"`
	// Tokens is the token count of Text.
	Tokens int `json:"tokens"`
	// Uncounted marks a message stored with the estimate's costs, whose
	// exact counts the next ingest makes (see deferCounts).
	Uncounted bool `json:"uncounted,omitempty"`
	// rawSaved reports that the stored record has a raw key (not stored).
	rawSaved bool
	// rawNone reports that the stored record is known to hold no raw JSON
	// (written or read without one), so that rewriting it needs no read of
	// the store first: a round trip on the request path with a shared
	// store (not stored).
	rawNone bool
	// raw is the raw JSON the record was stored with, kept only while the
	// next ingest is due to store the record again (a reply whose counts
	// were deferred: its exact costs and the raw key the client resends it
	// with), so that rewriting it needs no read of the store: two round
	// trips a turn with a shared store. nil otherwise; not counted in the
	// context's footprint, being at most a reply's (not stored).
	raw json.RawMessage
}

// dropRaw records that the stored record of m holds no raw JSON any more
// (an erasure or a prune wrote it without).
func (m *msgRecord) dropRaw() { m.raw, m.rawNone = nil, true }

// msgDisk is a message record as stored: msgRecord plus the raw JSON of
// the message as the client sent it, kept byte for byte.
type msgDisk struct {
	*msgRecord
	Raw json.RawMessage `json:"raw,omitempty"`
}

// msgRecordKV returns the store record of an updated message, with the
// raw JSON the store holds for it.
func (e *Engine) msgRecordKV(c *mctx, m *msgRecord) (store.KV, error) {
	key := msgKey(c.key, m.Seq)
	if m.rawNone || m.raw != nil {
		return store.KV{Key: key, Value: mustJSON(msgDisk{m, m.raw})}, nil
	}
	v, _, err := e.st.Get(key)
	if err != nil {
		return store.KV{}, err
	}
	return store.KV{Key: key, Value: mustJSON(msgDisk{m, storedRaw(v)})}, nil
}

// ctxRecord is a stored MegaContext header.
type ctxRecord struct {
	Created  int64 `json:"created"`
	Updated  int64 `json:"updated"`
	Messages int   `json:"messages"`
	Tokens   int   `json:"tokens"`
	Bytes    int64 `json:"bytes"`
	// Policy is the fingerprint (policy.Fingerprint) of the policy the
	// stored spans and tags were found with; "" for none, and for contexts
	// stored before it was recorded. Loading a context whose Policy is not
	// the engine's rescans it (rescan.go).
	Policy string `json:"policy,omitempty"`
	// Tokenizer names the token counter (tokens.Counter.Name) the stored
	// token counts were made with: the latest one other than the estimate
	// that ingested into the context, else the estimate; "" for contexts
	// stored before it was recorded. An export names it in the bundle's
	// derivation whatever counter the exporting process has, so that a
	// process without the upstream's tokenizer (an offline export) gives
	// the same root (snapshot.go).
	Tokenizer string `json:"tokenizer,omitempty"`
}

func (r ctxRecord) info(tenant string) ContextInfo {
	return ContextInfo{
		Tenant:    tenant,
		Created:   time.UnixMilli(r.Created).UTC(),
		Updated:   time.UnixMilli(r.Updated).UTC(),
		Messages:  r.Messages,
		Tokens:    r.Tokens,
		DiskBytes: r.Bytes,
	}
}

func unmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// mctx is one loaded MegaContext.
type mctx struct {
	mu     sync.Mutex
	key    Key
	rec    ctxRecord
	msgs   []*msgRecord
	byHash map[string]int64
	// byRaw finds messages by raw key.
	byRaw map[rawKey]int64
	// marks are the message lists that reconciled whole lately, oldest
	// first (not stored).
	marks  []prefixMark
	kids   map[int64][]int64
	tree   *tree.Tree
	index  *lens.Index
	sticky map[[2]int]bool
	// uncounted holds the counts a stored reply left for the next ingest;
	// nil when every stored cost is exact.
	uncounted *deferred
	// vecs are the blocks' embeddings, contiguous from block 0 (background).
	vecs  []qvec.Vector
	used  uint64
	stale bool
	// version is the shared store's version c reflects (zero: not stored
	// yet, or an embedded store, which has none).
	version store.Version
	// bytes is the footprint the engine counts for the context (account);
	// msgBytes and nodeBytes are the running sums it is made of (cache.go).
	bytes, msgBytes, nodeBytes int64
	// loadOff is where the next block starts in its message's text, while
	// loading (shareText).
	loadOff int
	// telMu guards what the keeper writes (keep.go, telemetry.go), so that
	// it never waits for, or holds up, a request: focus is the nodes' focus
	// telemetry, focusDirty the nodes changed since the keeper last stored
	// them, prevShown the nodes the previous kept window showed (swaps),
	// kept the last kept windows, oldest first; gone is set by Delete. A
	// holder of mu may take telMu, never the other way round.
	telMu      sync.Mutex
	gone       bool
	focus      map[nodeKey2]*NodeFocus
	focusDirty map[nodeKey2]bool
	prevShown  map[nodeKey2]bool
	// focusBase is, with a shared store, each node's telemetry as the
	// store last gave it (loaded, or returned by the keeper's last
	// addition): the keeper adds focus minus focusBase (addFocus). Nil
	// with the embedded store.
	focusBase map[nodeKey2]NodeFocus
	kept      []*keptWindow
	// pins are the context's pins (pins.go), under mu.
	pins pinsRecord
	// asks remembers what the short user messages that matched a question
	// ask (askTerms), by sequence number, under mu: at most one entry per
	// message, its terms mostly slices of the message's text. Not counted
	// in bytes (a few dozen bytes a message read, against the kilobytes of
	// its blocks and index).
	asks map[int64]askMemo
	// facts is the block facts the assemblies read (blockFacts), under mu:
	// each assembly empties and reuses it, sparing a long history's arrays
	// (about 10 bytes a block, not counted in bytes).
	facts *blockFacts
	// links are the history's words WordNet lacks linked to its nouns
	// (wordLinks), under mu: brought up to date by each assembly's query
	// (a few links, not counted in bytes).
	links *wordLinks
	// telBytes is the footprint of focus and kept (read without telMu).
	telBytes atomic.Int64
}

// nameMinIDF is the least IDF of a word only ever capitalized (and only
// at sentence starts) for a headline to keep it as a name: "Noted" opens
// reply after reply, a name does not.
const nameMinIDF = 4

// newTree returns an empty gist tree whose gists weigh words by their
// rarity in the history idx indexes, so that headlines name what a span is
// about rather than what every span says.
func (e *Engine) newTree(idx *lens.Index) *tree.Tree {
	gs := e.gists
	if idx != nil {
		gs.Rarity = func(w string) float64 { return idx.IDF(lens.Stem(w)) }
		gs.IsName = func(w string) bool {
			t := lens.Stem(w)
			return idx.Name(t) || (idx.Capitalized(t) && idx.IDF(t) > nameMinIDF)
		}
	}
	return tree.New(e.opts.BlockTokens, e.opts.Fanout, func(level int, children []*tree.Node) tree.Gist {
		if level == 1 {
			children = e.redactedBlocks(children)
		}
		// The costs are sized by the estimate here; the ingest's tally counts
		// them with the engine's counter (countGist).
		return gs.Summarize(level, children)
	})
}

// redactedBlocks returns copies of blocks whose sensitive spans are
// redacted for nobody's clearance, and whose excluded text is dropped, so
// that gists never carry a sensitive span to anyone.
func (e *Engine) redactedBlocks(blocks []*tree.Node) []*tree.Node {
	out := blocks
	copied := false
	for i, b := range blocks {
		if len(b.Spans) == 0 {
			continue
		}
		if !copied {
			out, copied = append([]*tree.Node(nil), blocks...), true
		}
		text, excluded, _ := e.opts.Policy.Apply(b.Text, toPolicySpans(b.Spans), nil)
		cp := *b
		cp.Text = text
		if excluded {
			cp.Text = ""
		}
		out[i] = &cp
	}
	return out
}

func toPolicySpans(in []tree.Span) []policy.Span {
	out := make([]policy.Span, len(in))
	for i, s := range in {
		out[i] = policy.Span{Start: s.Start, End: s.End, Rule: s.Rule}
	}
	return out
}

// blockSpans clips the message-level spans to the block [start, end) and
// makes them relative to the block.
func blockSpans(spans []policy.Span, start, end int) []tree.Span {
	var out []tree.Span
	for _, s := range spans {
		if s.End <= start || s.Start >= end {
			continue
		}
		out = append(out, tree.Span{Start: max(s.Start, start) - start, End: min(s.End, end) - start, Rule: s.Rule})
	}
	return out
}

// load reads a context from the store, repairing one whose tree does not
// match its messages (repair.go).
func (e *Engine) load(k Key) (*mctx, bool, error) {
	c, found, why, err := e.loadOnce(k, true)
	if err != nil || why == "" {
		return c, found, err
	}
	e.repairMu.Lock()
	defer e.repairMu.Unlock()
	// Another load may have repaired it meanwhile.
	if c, found, why, err = e.loadOnce(k, true); err != nil || why == "" {
		return c, found, err
	}
	if err := e.repairTree(c, why); err != nil {
		return nil, false, fmt.Errorf("memory: repair the tree of %q: %w", k.Context, err)
	}
	c, found, why, err = e.loadOnce(k, true)
	if err == nil && why != "" {
		err = fmt.Errorf("memory: the tree of %q still does not match its messages after a rebuild (%s)", k.Context, why)
	}
	return c, found, err
}

// loadOnce reads a context from the store as it is. When its tree does
// not match its messages, it stops there and says why (c is then only
// good for repairTree). A header that does not count the messages is
// recounted and stored when repair is set, else reported the same way.
func (e *Engine) loadOnce(k Key, repair bool) (c *mctx, found bool, why string, err error) {
	c = &mctx{key: k, byHash: map[string]int64{}, byRaw: map[rawKey]int64{}, kids: map[int64][]int64{}, index: lens.NewIndex(), sticky: map[[2]int]bool{},
		focus: map[nodeKey2]*NodeFocus{}, focusDirty: map[nodeKey2]bool{}}
	c.tree = e.newTree(c.index)
	c.index.UseVectors(e.opts.Vectors)
	src, version, err := e.loadReader(k)
	if err != nil {
		return nil, false, "", err
	}
	v, found, err := src.get(headerKey(k))
	if err != nil {
		return nil, false, "", err
	}
	if !found {
		c.rec.Policy = e.policyPrint // what its spans will be found with
		return c, false, "", nil
	}
	c.version = version
	headerOK := decodeHeader(v, &c.rec)
	err = src.scan(recordPrefix(kindMessage, k), func(key, val string) bool {
		m := e.decodeMessage(k, key, val)
		m.rawSaved = !m.RawKey.IsZero()
		m.Role = internRole(m.Role)
		// A missing record (a damaged file) leaves a placeholder, so that
		// sequence numbers stay positions.
		for int64(len(c.msgs)) < m.Seq {
			c.addMsg(damagedMessage(int64(len(c.msgs))))
		}
		if m.Seq == int64(len(c.msgs)) {
			c.addMsg(m)
		}
		return true
	})
	if err != nil {
		return nil, false, "", fmt.Errorf("memory: load messages of %q: %w", k.Context, err)
	}
	if !headerOK {
		e.log.Error("stored context header unreadable; rebuilt from its messages", "tenant", k.Tenant, "context", k.Context)
		rebuildHeader(c)
	}
	// A node that cannot take its place (one before it is missing) is
	// left out and the tree rebuilt (repair.go).
	var restoreErr error
	err = src.scan(recordPrefix(kindNode, k), func(key, val string) bool {
		if err := e.restoreNode(c, key, val); err != nil && restoreErr == nil {
			restoreErr = err
		}
		return true
	})
	if err != nil {
		return nil, false, "", fmt.Errorf("memory: load nodes of %q: %w", k.Context, err)
	}
	switch {
	case restoreErr != nil:
		return c, true, restoreErr.Error(), nil
	case !c.treeMatches():
		return c, true, "the blocks do not spell the messages in order", nil
	case !c.headerMatches() && !repair:
		return c, true, "the header does not count the messages", nil
	case !c.headerMatches():
		e.repairHeader(c)
	}
	if c.rec.Policy != e.policyPrint {
		e.rescan(c)
	}
	if err := e.loadPins(c); err != nil {
		return nil, false, "", fmt.Errorf("memory: load pins of %q: %w", k.Context, err)
	}
	if err := e.loadFocus(c); err != nil {
		return nil, false, "", fmt.Errorf("memory: load focus telemetry of %q: %w", k.Context, err)
	}
	e.recountUncounted(c)
	if e.opts.Embedder != nil {
		if err := e.loadVectors(c, src); err != nil {
			return nil, false, "", fmt.Errorf("memory: load vectors of %q: %w", k.Context, err)
		}
		defer e.pokeEmbedder(k)
	}
	c.bytes = c.footprint()
	return c, true, "", nil
}

// shareText points a block read back from the store at its part of its
// message's text, which holds the same bytes, so that memory keeps one copy
// of the text. Blocks of a message come in order and concatenate to its
// text; loadOff is where the next one starts.
func (c *mctx) shareText(b *tree.Node) {
	if b.Msg < 0 || b.Msg >= int64(len(c.msgs)) {
		return
	}
	if b.Part == 0 {
		c.loadOff = 0
	}
	m := c.msgs[b.Msg]
	if end := c.loadOff + len(b.Text); end <= len(m.Text) && m.Text[c.loadOff:end] == b.Text {
		b.Text = m.Text[c.loadOff:end]
	}
	c.loadOff += len(b.Text)
}

// textShared reports whether a block's text lies inside its message's
// text (shareText, or the split of a message at ingest) rather than being
// a copy of its own.
func (c *mctx) textShared(b *tree.Node) bool {
	if b.Level != 0 || b.Text == "" || b.Msg < 0 || b.Msg >= int64(len(c.msgs)) {
		return false
	}
	m := c.msgs[b.Msg].Text
	if m == "" {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(b.Text))), uintptr(unsafe.Pointer(unsafe.StringData(m)))
	return p >= lo && p+uintptr(len(b.Text)) <= lo+uintptr(len(m))
}

func (c *mctx) addMsg(m *msgRecord) {
	c.msgBytes += msgFootprint(m)
	c.msgs = append(c.msgs, m)
	c.byHash[m.Hash] = m.Seq
	if !m.RawKey.IsZero() {
		c.byRaw[m.RawKey] = m.Seq
	}
	c.kids[m.Parent] = append(c.kids[m.Parent], m.Seq)
}

// chainHash links a message to its predecessor's hash.
func chainHash(prev string, m Message) string {
	h := sha256.New()
	h.Write([]byte(prev))
	for _, s := range []string{m.Role, m.Name, m.Text} {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// threadSeed is the hash a thread's chain starts from.
func threadSeed(thread string) string {
	if thread == "" {
		return ""
	}
	return chainHash("thread", Message{Text: thread})
}

// isLeadingRole reports roles that, at the start of a list, are the client's
// system prompt rather than conversation.
func isLeadingRole(role string) bool { return role == "system" || role == "developer" }

// pending is the in-memory result of an ingest, to persist.
type pending struct {
	kvs []store.KV
}

// appendMessages adds new messages after parent (-1 for a new thread),
// builds their blocks and gists, and returns the records to persist and
// the new sequence numbers. leading[i] marks client system prompts, which
// are stored but not put in the tree. Every cost is counted in one batch,
// with whatever an earlier reply deferred (see deferCounts), which
// countFresh (a dry run) leaves deferred; countLater stores the estimate's
// costs and defers the batch to the next ingest.
//
// A divergence after at least one conversation message is an edit or a
// regeneration: branches stored before seq since are superseded by the new
// one. A branch stored since then won a race (the client continued with its
// own copy of a reply before the reply was stored): the new messages are
// the superseded ones.
//
// clientRaw says that each message's Raw is the client's own JSON of it,
// whose raw key is then recorded (not so for a reply, which the client will
// write its own way). Nothing of msgs is retained: the strings kept are
// copies, so that msgs may alias a request buffer.
func (e *Engine) appendMessages(c *mctx, parent int64, prevHash string, msgs []Message, leading []bool, partial bool, now time.Time, since int64, clientRaw bool, counts countMode) (*pending, []int64, error) {
	p := &pending{}
	var seqs []int64
	lost := false
	if len(msgs) > 0 && parent >= 0 && !isLeadingRole(c.msgs[parent].Role) {
		for _, sib := range c.kids[parent] {
			if sib >= since {
				lost = true
				continue
			}
			kvs, err := e.supersede(c, sib)
			if err != nil {
				return nil, nil, err
			}
			p.kvs = append(p.kvs, kvs...)
		}
	}
	ms := now.UnixMilli()
	var rh *rawHasher
	// Every count of this ingest is made at once, when the tree is built
	// (one round trip to a remote tokenizer); records are encoded after.
	var t tally
	var nodes []*tree.Node
	var recs []*msgRecord
	var raws []json.RawMessage
	// The memory message's fixed texts join the first ingest's batch, so
	// that assembly finds them counted.
	var fixed int
	e.countHeader(&t, e.preamble(), &fixed)
	if e.opts.Render == RenderOutline {
		e.countHeader(&t, SmallPreamble, &fixed)
	}
	e.countHeader(&t, Closing, &fixed)
	for i, m := range msgs {
		h := chainHash(prevHash, m)
		seq := int64(len(c.msgs))
		rec := &msgRecord{Seq: seq, Parent: parent, Hash: h, Role: internRole(m.Role), Name: strings.Clone(m.Name), Text: strings.Clone(m.Text), Extra: m.Extra, Time: ms, Partial: partial, Superseded: lost, First: -1, Last: -1}
		if clientRaw && len(m.Raw) > 0 {
			if rh == nil {
				rh = newRawHasher()
			}
			rec.RawKey, rec.rawSaved = rh.key(prevHash, m.Raw), true
		}
		if !leading[i] && rec.Text != "" {
			e.addBlocks(c, rec, &t, func(n *tree.Node) { nodes = append(nodes, n) })
		} else {
			// Leading system prompts stay out of the tree, but are tagged
			// for the admin view.
			e.tagUnblocked(rec, &t)
		}
		c.addMsg(rec)
		c.rec.Messages++
		recs, raws = append(recs, rec), append(raws, m.Raw)
		seqs = append(seqs, seq)
		parent, prevHash = seq, h
	}
	var redo []*msgRecord
	if counts == countLater {
		// A stored reply: its costs are the estimate's until the next ingest
		// counts them with its own batch (one round trip per turn).
		e.deferCounts(c, &t, nodes, recs)
	} else {
		// With whatever an earlier reply deferred, stored again below.
		nodes, redo = e.settleAll(c, &t, nodes, recs, counts == countFresh)
	}
	for _, n := range nodes {
		p.kvs = append(p.kvs, store.KV{Key: nodeKey(c.key, n.Level, n.Index), Value: mustJSON(n)})
	}
	for _, rec := range redo {
		kv, err := e.msgRecordKV(c, rec)
		if err != nil {
			return nil, nil, err
		}
		rec.raw = nil // stored for the last time with deferred work
		p.kvs = append(p.kvs, kv)
	}
	for i, rec := range recs {
		rec.rawNone = len(raws[i]) == 0
		if counts == countLater && !rec.rawNone {
			rec.raw = raws[i]
		}
		val := mustJSON(msgDisk{rec, raws[i]})
		c.rec.Bytes += int64(len(val))
		p.kvs = append(p.kvs, store.KV{Key: msgKey(c.key, rec.Seq), Value: val})
	}
	if c.rec.Created == 0 {
		c.rec.Created = ms
	}
	c.rec.Updated = ms
	e.recordTokenizer(c)
	p.kvs = append(p.kvs, store.KV{Key: headerKey(c.key), Value: mustJSON(c.rec)})
	return p, seqs, nil
}

// internRole returns the engine's own copy of a role name.
func internRole(role string) string {
	for _, r := range [...]string{"user", "assistant", "system", "developer", "tool", "function"} {
		if role == r {
			return r
		}
	}
	return strings.Clone(role)
}

// addBlocks splits a message's text into blocks, tags their sensitive
// spans (and, as whole-block spans, the rules tagged on the whole message,
// rec.Whole), appends them to the tree, building the gists they fill, and
// to the lens index (when the context has one), and sets the record's tags
// and block range; the costs of the blocks, the gists and the record's
// token count are asked of t (they are set when it settles). emit receives
// every new node, blocks first.
func (e *Engine) addBlocks(c *mctx, rec *msgRecord, t *tally, emit func(*tree.Node)) {
	spans := e.opts.Policy.Scan(rec.Text)
	ranges := make([][2]int, len(spans))
	for j, sp := range spans {
		ranges[j] = [2]int{sp.Start, sp.End}
	}
	// The name is text the user wrote too: its spans tag the message,
	// and an exclude rule in it withholds the message.
	nameSpans := e.opts.Policy.Scan(rec.Name)
	rec.Tags = policy.Tags(slices.Concat(spans, nameSpans, wholeSpans(rec.Whole)))
	pieces := keepSpansWhole(splitBlocks(rec.Text, e.opts.BlockTokens), ranges)
	whole := e.wholeRules(rec, spans, nameSpans)
	rec.First = c.tree.Len()
	off := 0
	for j, text := range pieces {
		b := &tree.Node{Text: text, Msg: rec.Seq, Part: j, Role: rec.Role, Time: rec.Time}
		b.Spans = withWhole(whole, blockSpans(spans, off, off+len(text)), len(text))
		for _, sp := range b.Spans {
			if !slices.Contains(b.Tags, sp.Rule) {
				b.Tags = append(b.Tags, sp.Rule)
			}
		}
		off += len(text)
		// Indexed first: the gists Append builds weigh words by the
		// history's rarity, this block's words included.
		if c.index != nil {
			c.index.Add(text)
		}
		for _, n := range c.tree.Append(b) {
			if n.Level > 0 {
				e.countGist(t, n)
			} else {
				e.tallyBlock(t, n, c.tree.Block(n.Index-1))
			}
			c.nodeBytes += nodeFootprint(n, n.Level == 0) // a block's text is a slice of rec.Text
			emit(n)
		}
	}
	rec.Last = c.tree.Len() - 1
	e.tallySum(t, c, rec)
}

// wholeRules are the rules every block of a message carries as a
// whole-block span: those of exclude rules its text (spans) or its name
// (nameSpans) matched, since an exclude rule withholds the whole message,
// not just the block its span falls in; and those tagged on the message
// whole (rec.Whole).
func (e *Engine) wholeRules(rec *msgRecord, spans, nameSpans []policy.Span) []string {
	var whole []string
	for _, sp := range slices.Concat(spans, nameSpans) {
		if e.opts.Policy.Excludes(sp.Rule) && !slices.Contains(whole, sp.Rule) {
			whole = append(whole, sp.Rule)
		}
	}
	for _, t := range rec.Whole {
		if !slices.Contains(whole, t) {
			whole = append(whole, t)
		}
	}
	return whole
}

// withWhole puts a whole-block span of each rule of whole, for a block of
// n bytes, before the block's own spans.
func withWhole(whole []string, spans []tree.Span, n int) []tree.Span {
	if len(whole) == 0 {
		return spans
	}
	out := make([]tree.Span, 0, len(whole)+len(spans))
	for _, r := range whole {
		out = append(out, tree.Span{Start: 0, End: n, Rule: r})
	}
	return append(out, spans...)
}

// tagUnblocked tags a message that has no blocks (a leading system
// prompt, an empty message) with the rules its text and name match and
// those tagged on it whole, and asks t for its token count.
func (e *Engine) tagUnblocked(rec *msgRecord, t *tally) {
	rec.Tags = policy.Tags(slices.Concat(e.opts.Policy.Scan(rec.Text), e.opts.Policy.Scan(rec.Name), wholeSpans(rec.Whole)))
	if rec.Text != "" {
		e.countHeader(t, rec.Text, &rec.Tokens)
	}
}

// wholeSpans are the spans that stand for rules tagged on a whole message.
func wholeSpans(rules []string) []policy.Span {
	out := make([]policy.Span, len(rules))
	for i, r := range rules {
		out[i] = policy.Span{Rule: r}
	}
	return out
}

// supersede marks a message and its descendants superseded.
func (e *Engine) supersede(c *mctx, seq int64) ([]store.KV, error) {
	var kvs []store.KV
	stack := []int64{seq}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		m := c.msgs[s]
		if !m.Superseded {
			m.Superseded = true
			kv, err := e.msgRecordKV(c, m)
			if err != nil {
				return nil, err
			}
			kvs = append(kvs, kv)
		}
		stack = append(stack, c.kids[s]...)
	}
	return kvs, nil
}

// mustJSON encodes a record. It cannot fail: records hold strings, numbers
// and raw JSON that checkMessages (or storedRaw) verified.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("memory: encode %T: %v", v, err))
	}
	return string(b)
}

// ingest reconciles msgs with the stored threads (decoding with decode the
// messages that arrive undecoded, see reconcile) and durably stores the new
// suffix. It returns the sequence number of every message. admit, when set,
// sees every message's sequence number before anything new is stored
// (the new ones built and counted in memory only); when it refuses, ingest
// stores nothing, drops the context from memory and returns ErrTooLong.
func (e *Engine) ingest(c *mctx, k Key, msgs []Message, decode Decoder, at time.Time, admit func(seqs []int64) bool) ([]int64, int, error) {
	seqs, added, wait, err := e.ingestStart(c, k, msgs, decode, at, admit)
	if err != nil {
		return nil, 0, err
	}
	if wait != nil {
		if err := wait(); err != nil {
			return nil, 0, err
		}
	}
	return seqs, added, nil
}

// ingestStart is ingest with its write left running: with a shared store,
// the write (one round trip) goes out while the caller assembles the
// window from the context as staged, and wait, when not nil, reports how
// it went. The caller must call wait, holding c.mu as it does now, before
// anything computed from c leaves the engine (a window from a cache the
// write's guard did not vouch for must not reach the model) and before it
// releases c; until then seqs and added are what the write will store.
// A wait that fails has dropped c, as a failed ingest does. wait is nil
// when the write already ended (the embedded store, or nothing to write).
func (e *Engine) ingestStart(c *mctx, k Key, msgs []Message, decode Decoder, at time.Time, admit func(seqs []int64) bool) (seqs []int64, added int, wait func() error, err error) {
	s, err := e.stage(c, k, msgs, decode, at, admit, true)
	if err != nil {
		return nil, 0, nil, err
	}
	done := func(err error) error {
		if err != nil {
			// Memory and store disagree now: reload from the store next time.
			e.forget(k)
			c.stale = true
			return fmt.Errorf("memory: store messages: %w", err)
		}
		if s.added > 0 {
			e.pokeEmbedder(k)
		}
		e.account(c)
		c.remember(s.whole, s.seqs)
		return nil
	}
	// The new words are linked now, not by the next assembly (a long
	// history's first question would pay for all of them): after the
	// write, or while it is in flight.
	link := func() {
		if s.added > 0 {
			e.linksOf(c)
		}
	}
	if e.shared == nil || len(s.kvs) == 0 {
		err := e.put(c, s.kvs...)
		if err == nil {
			link()
		}
		if err := done(err); err != nil {
			return nil, 0, nil, err
		}
		return s.seqs, s.added, nil, nil
	}
	written := e.putStart(c, s.kvs...)
	link()
	return s.seqs, s.added, func() error { return done(written()) }, nil
}

// staged is what stage did to a context in memory.
type staged struct {
	// seqs are the sequence numbers of every message of the request.
	seqs []int64
	// kvs are the records to persist: raw keys learned, new messages, nodes.
	kvs []store.KV
	// whole is the hash of the list's raw bytes, for remember.
	whole listSum
	// added counts the new messages.
	added int
}

// stage is the in-memory half of ingest: it reconciles msgs with the
// stored threads and appends the new suffix to the context (messages,
// blocks, gists, lens postings). The caller persists the records, or takes
// the change back (a dry run, see checkpoint); persist is reconcile's.
func (e *Engine) stage(c *mctx, k Key, msgs []Message, decode Decoder, at time.Time, admit func(seqs []int64) bool, persist bool) (staged, error) {
	seqs, prevHash, learned, whole, err := e.reconcile(c, k, msgs, decode, persist)
	if err != nil {
		return staged{}, err
	}
	s := staged{seqs: seqs, kvs: learned, whole: whole}
	if len(seqs) == len(msgs) {
		switch {
		case c.uncounted == nil:
		case persist:
			// Nothing new, but a stored reply's counts are still to make.
			kvs, err := e.countDeferred(c)
			if err != nil {
				e.forget(k)
				c.stale = true
				return staged{}, err
			}
			s.kvs = append(s.kvs, kvs...)
		default:
			// A dry run counts them as the live request would, in memory.
			var t tally
			e.settleAll(c, &t, nil, nil, true)
		}
		return s, nil
	}
	parent := int64(-1)
	if len(seqs) > 0 {
		parent = seqs[len(seqs)-1]
	}
	rest := msgs[len(seqs):]
	if err := checkMessages(rest); err != nil {
		return staged{}, err
	}
	// A dry run leaves what a reply deferred to the next real ingest.
	mode := countAll
	if !persist {
		mode = countFresh
	}
	p, newSeqs, err := e.appendMessages(c, parent, prevHash, rest, leadingFlags(msgs, len(seqs)), false, at, math.MaxInt64, true, mode)
	if err != nil {
		e.forget(k)
		c.stale = true
		return staged{}, err
	}
	// Admission reads the new messages' costs from the ingest's one batch
	// of counts. A refused turn is dropped from memory too: nothing was
	// stored, and the context reloads from the store (a dry run's caller
	// rolls it back).
	if admit != nil && !admit(append(slices.Clip(seqs), newSeqs...)) {
		if persist {
			e.forget(k)
			c.stale = true
		}
		return staged{}, ErrTooLong
	}
	s.seqs = append(seqs, newSeqs...)
	s.kvs = append(s.kvs, p.kvs...)
	s.added = len(rest)
	return s, nil
}

// countDeferred counts what a stored reply deferred and returns the
// records of the nodes and messages with their exact costs, and the
// context's header.
func (e *Engine) countDeferred(c *mctx) ([]store.KV, error) {
	var t tally
	nodes, recs := e.settleAll(c, &t, nil, nil, false)
	kvs := make([]store.KV, 0, len(nodes)+len(recs)+1)
	for _, n := range nodes {
		kvs = append(kvs, store.KV{Key: nodeKey(c.key, n.Level, n.Index), Value: mustJSON(n)})
	}
	for _, rec := range recs {
		kv, err := e.msgRecordKV(c, rec)
		if err != nil {
			return nil, err
		}
		rec.raw = nil // stored for the last time with deferred work
		kvs = append(kvs, kv)
	}
	return append(kvs, store.KV{Key: headerKey(c.key), Value: mustJSON(c.rec)}), nil
}

// leadingFlags marks, for msgs[from:], the client system prompts at the
// start of the list.
func leadingFlags(msgs []Message, from int) []bool {
	out := make([]bool, len(msgs)-from)
	lead := true
	for i, m := range msgs {
		lead = lead && isLeadingRole(m.Role)
		if i >= from {
			out[i-from] = lead
		}
	}
	return out
}

// AppendResponse stores an assistant response as the child of message
// parent (Window.LastSeq); since is Window.NextSeq, the first sequence
// number stored after the request was prepared. partial marks a response
// cut off mid-stream. A reply whose parent was already continued since
// (the client's next turn raced ahead with its own copy of the reply) is
// kept but marked superseded rather than superseding the live thread.
func (e *Engine) AppendResponse(k Key, parent, since int64, m Message, partial bool) error {
	if parent < 0 {
		return fmt.Errorf("memory: response parent %d out of range", parent)
	}
	_, err := e.StoreResponse(k, parent, since, &m, partial, nil)
	return err
}

// Import stores msgs as one conversation that happened at the given time,
// as a thread of its own (thread names it; empty lets the hash chain
// decide). Messages already stored are skipped, so an import can be resumed.
// It returns how many messages were added.
func (e *Engine) Import(k Key, msgs []Message, at time.Time) (int, error) {
	return retry(e, k, func() (int, error) {
		c, err := e.acquire(k, true)
		if err != nil {
			return 0, err
		}
		defer c.mu.Unlock()
		_, added, err := e.ingest(c, k, msgs, nil, at, nil)
		return added, err
	})
}

// Branches: Fork copies a context, or its history up to a message, into a
// new one; Diff lists what two contexts hold that the other lacks since
// their common ancestor; Merge brings the other side's new messages into a
// context as a thread of their own.
//
// A message is the same on both sides when its chain hash is: the hash
// covers its role, name and text and every message before it in its
// thread, so two contexts that share a message share its whole history.
// Merged messages keep their chain hash (their parents map to messages
// with the same hashes), so a client resending the other side's
// conversation to the merged context finds it stored, and merging again
// adds nothing.
//
// The laws, property-tested (branch_test.go): diff(a, a) is empty; after a
// fork and appends on both sides, merge(a <- b) adds exactly b's new
// messages, in order, and changes none of a's; after it diff(a, b) has
// nothing on b's side, and a second merge adds nothing; export then import
// keeps the root, forks and merges included.
//
// Copy on write: buntdb keeps every record as an immutable Go string, in
// memory and in its append-only file. A fork writes the source's unchanged
// records under the new context's keys with the very same strings, so in
// memory the two contexts share those bytes, and a change to either side
// writes a new value (copy on write at the record level). Its file holds
// each key's value in full: a fork costs disk, not memory. Sharing records
// across keys on disk would need a content-addressed layout with reference
// counts on every read, Delete and Forget; PostgreSQL (issue 14) is where
// that trade-off is worth making.

package memory

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Origin says where a merged message came from.
type Origin struct {
	// Context is the context it was merged from.
	Context string `json:"context"`
	// Seq is its sequence number there.
	Seq int64 `json:"seq"`
	// Time is its arrival time there (Unix ms); the merged copy arrives no
	// earlier than what the context held before it.
	Time int64 `json:"time"`
}

// acquirePair locks two distinct contexts, always in the same order, so
// that two operations on one pair never wait on each other.
func (e *Engine) acquirePair(a Key, createA bool, b Key, createB bool) (*mctx, *mctx, error) {
	if a.id() > b.id() {
		cb, ca, err := e.acquirePair(b, createB, a, createA)
		return ca, cb, err
	}
	ca, err := e.acquire(a, createA)
	if err != nil {
		return nil, nil, err
	}
	cb, err := e.acquire(b, createB)
	if err != nil {
		ca.mu.Unlock()
		return nil, nil, err
	}
	return ca, cb, nil
}

// ForkResult describes a fork.
type ForkResult struct {
	// ID is the new context.
	ID string `json:"id"`
	// At is the last message taken from the source.
	At int64 `json:"at"`
	// Messages and Blocks count what the fork holds.
	Messages int `json:"messages"`
	Blocks   int `json:"blocks"`
	// SharedRecords counts the records written with the source's own
	// bytes (shared in memory); CopiedRecords those written anew.
	SharedRecords int `json:"shared_records"`
	CopiedRecords int `json:"copied_records"`
}

// Fork makes the new context to (in src's tenant) a branch of src holding
// its messages 0 to at (at < 0: all of them), with their blocks, the gists
// over them, their vectors and focus telemetry and the provenance that
// concerns them, plus a provenance record of the fork. A message superseded in src only by a
// branch the fork does not hold is live in the fork.
func (e *Engine) Fork(src Key, to string, at int64, caller string) (ForkResult, error) {
	dst := Key{Tenant: src.Tenant, Context: to}
	if err := dst.validate(); err != nil {
		return ForkResult{}, err
	}
	if dst.id() == src.id() {
		return ForkResult{}, fmt.Errorf("%w: %q (fork to a new id)", ErrExists, to)
	}
	cs, cd, err := e.acquirePair(src, false, dst, true)
	if err != nil {
		return ForkResult{}, err
	}
	defer cs.mu.Unlock()
	defer cd.mu.Unlock()
	if len(cd.msgs) > 0 || cd.rec.Created != 0 {
		return ForkResult{}, fmt.Errorf("%w: %q", ErrExists, to)
	}
	// Whatever happens, the fork is loaded from the store next time.
	defer func() {
		e.forget(dst)
		cd.stale = true
	}()
	if at < 0 || at >= int64(len(cs.msgs)) {
		if at >= int64(len(cs.msgs)) {
			return ForkResult{}, fmt.Errorf("%w: message %d (the context holds %d)", ErrNotFound, at, len(cs.msgs))
		}
		at = int64(len(cs.msgs)) - 1
	}
	blocks := 0
	for s := at; s >= 0; s-- {
		if m := cs.msgs[s]; m.First >= 0 {
			blocks = m.Last + 1
			break
		}
	}
	live := liveInPrefix(cs, at)
	res := ForkResult{ID: to, At: at, Messages: int(at + 1), Blocks: blocks}
	// The records are src's stored ones, found with the policy src's
	// header names (the engine's, unless storing src's rescan failed).
	rec := ctxRecord{Created: cs.rec.Created, Updated: e.opts.Now().UnixMilli(), Messages: res.Messages, Policy: cs.rec.Policy, Tokenizer: cs.rec.Tokenizer}
	var kvs []store.KV
	share := func(key, v string) {
		kvs = append(kvs, store.KV{Key: key, Value: v})
		res.SharedRecords++
	}
	var scanErr error
	err = e.st.Scan(recordPrefix(kindMessage, src), func(key, v string) bool {
		seq, ok := seqOfKey(key)
		if !ok {
			return true
		}
		if seq > at {
			return false
		}
		m := cs.msgs[seq]
		rec.Tokens += m.Tokens
		if !m.Superseded || !live[seq] {
			rec.Bytes += int64(len(v))
			share(msgKey(dst, seq), v)
			return true
		}
		// Superseded in src by a branch the fork does not hold.
		d := msgDisk{msgRecord: &msgRecord{}}
		if scanErr = unmarshal(v, &d); scanErr != nil {
			return false
		}
		d.Superseded = false
		nv := mustJSON(d)
		rec.Bytes += int64(len(nv))
		kvs = append(kvs, store.KV{Key: msgKey(dst, seq), Value: nv})
		res.CopiedRecords++
		return true
	})
	if err == nil {
		err = scanErr
	}
	if err == nil {
		err = e.st.Scan(recordPrefix(kindNode, src), func(key, v string) bool {
			l, i, ok := nodeOfKey(key)
			if n := cs.tree.Node(l, i); ok && n != nil && n.Last < blocks {
				share(nodeKey(dst, l, i), v)
			}
			return true
		})
	}
	if err == nil {
		err = e.st.Scan(recordPrefix(kindFocus, src), func(key, v string) bool {
			if l, i, ok := parseFocusKey(key); ok {
				if n := cs.tree.Node(l, i); n != nil && n.Last < blocks {
					share(focusKey(dst, l, i), v)
				}
			}
			return true
		})
	}
	if err == nil {
		err = e.st.Scan(recordPrefix(kindVector, src), func(key, v string) bool {
			if b, ok := seqOfKey(key); ok && b < int64(blocks) {
				share(vecKey(dst, int(b)), v)
			}
			return true
		})
	}
	if err != nil {
		return ForkResult{}, fmt.Errorf("memory: fork: %w", err)
	}
	prov, err := e.provenanceUpTo(src, at)
	if err != nil {
		return ForkResult{}, err
	}
	fork := ProvenanceRecord{Kind: provFork, Time: rec.Updated, Caller: caller, From: src.Context, At: &at, FirstBlock: -1, LastBlock: -1}
	for i, p := range append(prov, fork) {
		p.Type, p.Seq = recProvenance, int64(i)
		kvs = append(kvs, store.KV{Key: provKey(dst, int64(i)), Value: mustJSON(p)})
		res.CopiedRecords++
	}
	if err := e.storeNew(dst, kvs, store.KV{Key: headerKey(dst), Value: mustJSON(rec)}); err != nil {
		return ForkResult{}, err
	}
	return res, nil
}

// liveInPrefix reports, for each message up to at, whether a branch that
// competes with it (a sibling of it or of an ancestor, after a message
// that is not a leading system prompt, as ingest supersedes) is among the
// messages up to at: only then may it stay superseded in a fork.
func liveInPrefix(c *mctx, at int64) []bool {
	competed := make([]bool, at+1)
	for s := int64(0); s <= at; s++ {
		m := c.msgs[s]
		if m.Parent >= 0 {
			competed[s] = competed[m.Parent]
			if !competed[s] && !isLeadingRole(c.msgs[m.Parent].Role) {
				for _, sib := range c.kids[m.Parent] {
					if sib != s && sib <= at {
						competed[s] = true
						break
					}
				}
			}
		}
	}
	// A message is kept superseded only where a competitor exists.
	out := make([]bool, at+1)
	for s := range out {
		out[s] = !competed[s]
	}
	return out
}

// provenanceUpTo returns the provenance records of k that concern only
// messages up to at.
func (e *Engine) provenanceUpTo(k Key, at int64) ([]ProvenanceRecord, error) {
	var out []ProvenanceRecord
	var decodeErr error
	err := e.st.Scan(recordPrefix(kindProvenance, k), func(key, v string) bool {
		var p ProvenanceRecord
		if decodeErr = unmarshal(v, &p); decodeErr != nil {
			decodeErr = fmt.Errorf("decode %s: %w", key, decodeErr)
			return false
		}
		if len(p.Messages) == 0 || slices.Max(p.Messages) <= at {
			out = append(out, p)
		}
		return true
	})
	if err == nil {
		err = decodeErr
	}
	return out, err
}

// DiffSide is what one side of a diff holds that the other lacks.
type DiffSide struct {
	// ID names the side's context.
	ID string `json:"id"`
	// Count is how many messages the side has that the other lacks;
	// Messages lists the first of them (filtered for the caller).
	Count    int           `json:"count"`
	Messages []MessageInfo `json:"messages"`
	// Spans are the block ranges of those messages, merged where they
	// touch, oldest first.
	Spans []BlockSpan `json:"spans"`
}

// BlockSpan is an inclusive range of blocks.
type BlockSpan struct {
	First int `json:"first_block"`
	Last  int `json:"last_block"`
}

// Diff is the difference of two contexts since their common ancestor.
type Diff struct {
	// Ancestor is the history both share from the start: the first
	// Messages messages, whose blocks are the first Blocks blocks.
	Ancestor struct {
		Messages int `json:"messages"`
		Blocks   int `json:"blocks"`
	} `json:"ancestor"`
	// A and B are what each side holds that the other lacks.
	A DiffSide `json:"a"`
	B DiffSide `json:"b"`
}

// Diff compares the context a with the context b of a's tenant: the
// messages (and their blocks) each holds that the other lacks, at most
// limit listed per side, their text filtered for a caller holding scopes
// as Messages filters it.
func (e *Engine) Diff(a Key, b string, limit int, scopes []string) (Diff, error) {
	kb := Key{Tenant: a.Tenant, Context: b}
	if err := kb.validate(); err != nil {
		return Diff{}, err
	}
	var ca, cb *mctx
	var err error
	if kb.id() == a.id() {
		if ca, err = e.acquire(a, false); err != nil {
			return Diff{}, err
		}
		cb = ca
	} else if ca, cb, err = e.acquirePair(a, false, kb, false); err != nil {
		return Diff{}, err
	} else {
		defer cb.mu.Unlock()
	}
	defer ca.mu.Unlock()
	var d Diff
	n := 0
	for n < len(ca.msgs) && n < len(cb.msgs) && sameMessage(ca.msgs[n], cb.msgs[n]) {
		n++
	}
	d.Ancestor.Messages = n
	for s := n - 1; s >= 0; s-- {
		if ca.msgs[s].First >= 0 {
			d.Ancestor.Blocks = ca.msgs[s].Last + 1
			break
		}
	}
	d.A = e.diffSide(ca, cb, limit, scopes)
	d.B = e.diffSide(cb, ca, limit, scopes)
	return d, nil
}

// sameMessage reports whether two contexts' messages at one sequence
// number are the same message in the same place.
func sameMessage(x, y *msgRecord) bool {
	return x.Hash == y.Hash && x.Parent == y.Parent && !x.Damaged && !y.Damaged
}

// missingFrom returns the messages of c whose chain hash other lacks, in
// order. A damaged record matches nothing.
func missingFrom(c, other *mctx) []*msgRecord {
	var out []*msgRecord
	for _, m := range c.msgs {
		if _, ok := other.byHash[m.Hash]; !ok || m.Damaged {
			out = append(out, m)
		}
	}
	return out
}

func (e *Engine) diffSide(c, other *mctx, limit int, scopes []string) DiffSide {
	side := DiffSide{ID: c.key.Context, Messages: []MessageInfo{}, Spans: []BlockSpan{}}
	for _, m := range missingFrom(c, other) {
		side.Count++
		if len(side.Messages) < limit {
			side.Messages = append(side.Messages, e.messageInfo(c, m, scopes))
		}
		if m.First < 0 {
			continue
		}
		if k := len(side.Spans); k > 0 && side.Spans[k-1].Last+1 >= m.First {
			side.Spans[k-1].Last = max(side.Spans[k-1].Last, m.Last)
		} else {
			side.Spans = append(side.Spans, BlockSpan{First: m.First, Last: m.Last})
		}
	}
	return side
}

// MergeResult describes a merge.
type MergeResult struct {
	// From is the context merged from.
	From string `json:"from"`
	// Messages are the sequence numbers the merged messages got.
	Messages []int64 `json:"messages"`
	// FirstBlock and LastBlock are the blocks they added (-1: none).
	FirstBlock int `json:"first_block"`
	LastBlock  int `json:"last_block"`
}

// Merge brings into the context into the messages of the context from (of
// into's tenant) that into lacks, in from's order, appended to into's
// timeline as the thread(s) they form there: each keeps its parent (mapped
// to into's copy of it), its chain hash, its client JSON, its flags and
// its whole-message tags, and records its origin (from, its sequence number
// and its time there). Its blocks and the gists they fill are built by
// into's engine, its spans tagged by into's policy. Nothing of into
// changes but what is appended, and a provenance record of the merge.
func (e *Engine) Merge(into Key, from string, caller string) (MergeResult, error) {
	kf := Key{Tenant: into.Tenant, Context: from}
	if err := kf.validate(); err != nil {
		return MergeResult{}, err
	}
	return retry(e, into, func() (MergeResult, error) { return e.merge(into, kf, caller) })
}

func (e *Engine) merge(into, kf Key, caller string) (MergeResult, error) {
	from := kf.Context
	res := MergeResult{From: from, Messages: []int64{}, FirstBlock: -1, LastBlock: -1}
	if kf.id() == into.id() {
		return res, nil
	}
	ci, cf, err := e.acquirePair(into, false, kf, false)
	if err != nil {
		return MergeResult{}, err
	}
	defer ci.mu.Unlock()
	defer cf.mu.Unlock()
	todo := missingFrom(cf, ci)
	if len(todo) == 0 {
		return res, nil
	}
	stored, err := e.storedMessages(cf)
	if err != nil {
		return MergeResult{}, err
	}
	intree := inTree(cf.msgs)
	var kvs []store.KV
	// Every count of the merge is made at once (one batch); records are
	// encoded after.
	var t tally
	var nodes []*tree.Node
	emit := func(n *tree.Node) { nodes = append(nodes, n) }
	var recs []*msgRecord
	var raws []json.RawMessage
	// Arrival order is time order in the tree: a merged message arrives no
	// earlier than what into holds.
	floor := int64(0)
	if n := ci.tree.Len(); n > 0 {
		floor = ci.tree.Block(n - 1).Time
	}
	firstBlock := ci.tree.Len()
	now := e.opts.Now().UnixMilli()
	for _, m := range todo {
		parent := int64(-1)
		if m.Parent >= 0 {
			if p, ok := ci.byHash[cf.msgs[m.Parent].Hash]; ok {
				parent = p
			}
		}
		rec := &msgRecord{Seq: int64(len(ci.msgs)), Parent: parent, Hash: m.Hash, RawKey: stored[m.Seq].rawKey, Extra: m.Extra,
			Role: m.Role, Name: m.Name, Text: m.Text, Time: max(m.Time, floor), Partial: m.Partial, Superseded: m.Superseded,
			Whole: slices.Clone(m.Whole), Origin: &Origin{Context: from, Seq: m.Seq, Time: m.Time}, First: -1, Last: -1,
			rawSaved: !stored[m.Seq].rawKey.IsZero()}
		if intree[m.Seq] {
			e.addBlocks(ci, rec, &t, emit)
			floor = rec.Time
		} else {
			e.tagUnblocked(rec, &t)
		}
		ci.addMsg(rec)
		recs, raws = append(recs, rec), append(raws, stored[m.Seq].raw)
		res.Messages = append(res.Messages, rec.Seq)
	}
	e.settle(&t)
	sumGists(ci, nodes)
	for _, n := range nodes {
		kvs = append(kvs, store.KV{Key: nodeKey(into, n.Level, n.Index), Value: mustJSON(n)})
	}
	for i, rec := range recs {
		v := mustJSON(msgDisk{rec, raws[i]})
		ci.rec.Messages++
		ci.rec.Tokens += rec.Tokens
		ci.rec.Bytes += int64(len(v))
		kvs = append(kvs, store.KV{Key: msgKey(into, rec.Seq), Value: v})
	}
	ci.rec.Updated = max(ci.rec.Updated, now)
	if ci.tree.Len() > firstBlock {
		res.FirstBlock, res.LastBlock = firstBlock, ci.tree.Len()-1
	}
	pkv, err := e.provenanceKV(into, ProvenanceRecord{Kind: provMerge, Time: now, Caller: caller, From: from, Messages: res.Messages,
		FirstBlock: res.FirstBlock, LastBlock: res.LastBlock})
	if err == nil {
		kvs = append(kvs, pkv, store.KV{Key: headerKey(into), Value: mustJSON(ci.rec)})
		err = e.put(ci, kvs...)
	}
	if err != nil {
		// Memory and store disagree now: reload from the store next time.
		e.forget(into)
		ci.stale = true
		return MergeResult{}, fmt.Errorf("memory: merge: %w", err)
	}
	e.account(ci)
	e.pokeEmbedder(into)
	return res, nil
}

// storedMessages returns what only the store keeps of each message of c:
// the client's raw JSON and the raw key the store has (memory may hold a
// later one).
func (e *Engine) storedMessages(c *mctx) ([]storedMsg, error) {
	out := make([]storedMsg, len(c.msgs))
	err := e.st.Scan(recordPrefix(kindMessage, c.key), func(key, v string) bool {
		if seq, ok := seqOfKey(key); ok && seq >= 0 && seq < int64(len(out)) {
			out[seq] = storedMsg{raw: storedRaw(v)}
			if rk := gjson.Get(v, "rk"); rk.Type == gjson.String {
				_ = out[seq].rawKey.UnmarshalText([]byte(rk.Str))
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("memory: read messages of %q: %w", c.key.Context, err)
	}
	return out, nil
}

// storeNew writes the records of a new context k: a marker first, then the
// records in batches, then the header (with extra records), then the
// marker goes. A context without header is invisible, and Open removes the
// records of a marker left without one (recoverImports).
func (e *Engine) storeNew(k Key, kvs []store.KV, header store.KV, extra ...store.KV) error {
	marker := singleKey(kindImport, k)
	if err := e.st.Put(store.KV{Key: marker, Value: mustJSON(map[string]int64{"started": e.opts.Now().UnixMilli()})}); err != nil {
		return fmt.Errorf("memory: store %q: %w", k.Context, err)
	}
	fail := func(err error) error {
		if _, derr := e.st.Delete([]string{marker}, nil); derr == nil {
			_ = e.deleteContext(k)
		}
		return fmt.Errorf("memory: store %q: %w", k.Context, err)
	}
	for len(kvs) > 0 {
		n := min(len(kvs), importBatch)
		if err := e.st.Put(kvs[:n]...); err != nil {
			return fail(err)
		}
		kvs = kvs[n:]
	}
	if err := e.st.Put(append([]store.KV{header}, extra...)...); err != nil {
		return fail(err)
	}
	if _, err := e.st.Delete([]string{marker}, nil); err != nil {
		e.log.Warn("removing a store marker failed; the next start removes it", "context", k.Context, "err", err)
	}
	return nil
}

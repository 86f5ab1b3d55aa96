// Forget: erasure, not a tombstone. Erase removes text from a context for
// good: from its messages (the text and the client's raw JSON), from their
// blocks, from every gist and headline above them (rebuilt from what is
// left), from the blocks' embeddings (emptied: the background embedder
// never sees the text again), from the lens index and every other
// in-memory structure (the context is reloaded from the store), from the
// served responses that quote it (deleted), and from the store's file,
// which buntdb keeps as an append-only log: it is rewritten (shrunk) once
// the erasure is written, so that no older version of a record survives
// in it. A provenance record keeps what was erased as salted SHA-256
// hashes, with the time, the caller and the reason, never the text.
//
// The tree is append-only by design: nodes are never rewritten in place
// but for telemetry, tags, and this. An erasure keeps every block where it
// is (positions, message boundaries, the spans of the other blocks and the
// structure of the tree do not move) and rewrites the erased blocks' text
// and the gists on their paths to the root, whose Merkle hashes change
// accordingly: O(log n) nodes per erased block.
//
// Copies of the text that other memories hold (a fork, a merge, a bundle
// exported before) are theirs: erase it there too.

package memory

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// ErasedText stands where erased text was.
const ErasedText = "[erased]"

// ErrBadErase means an erasure request names nothing erasable.
var ErrBadErase = errors.New("memory: invalid erasure")

// EraseRequest says what to erase. Exactly one of Messages and Match is set.
type EraseRequest struct {
	// Messages are the sequence numbers of messages to erase whole: their
	// text becomes ErasedText.
	Messages []int64
	// Match is a literal (case-sensitive) to erase wherever a message's
	// text or name holds it: each occurrence becomes ErasedText.
	Match string
	// Reason says why, for the provenance record.
	Reason string
	// Caller names who asks, for the provenance record.
	Caller string
}

// EraseResult describes an erasure.
type EraseResult struct {
	// Messages are the messages whose text changed.
	Messages []int64 `json:"messages"`
	// Occurrences counts the literal's occurrences erased (Match).
	Occurrences int `json:"occurrences,omitempty"`
	// Blocks counts the blocks rewritten, Gists the gists rebuilt above them.
	Blocks int `json:"blocks"`
	Gists  int `json:"gists"`
	// Responses counts the served responses deleted because they quoted
	// erased text.
	Responses int `json:"responses"`
	// Provenance is the sequence number of the erasure's provenance record.
	Provenance int64 `json:"provenance"`
	// FileBytes is the store file's size after it was rewritten.
	FileBytes int64 `json:"file_bytes"`
}

// Erase erases text from the context k (see the file comment). Erasing
// what is already erased changes nothing but adds a provenance record.
func (e *Engine) Erase(k Key, req EraseRequest) (EraseResult, error) {
	if (len(req.Messages) > 0) == (req.Match != "") {
		return EraseResult{}, fmt.Errorf("%w: give either messages or match", ErrBadErase)
	}
	if req.Match != "" && strings.Contains(ErasedText, req.Match) {
		return EraseResult{}, fmt.Errorf("%w: the literal occurs in the erasure marker %q", ErrBadErase, ErasedText)
	}
	c, err := e.acquire(k, false)
	if err != nil {
		return EraseResult{}, err
	}
	defer c.mu.Unlock()
	res := EraseResult{Messages: []int64{}}
	targets := map[int64]bool{}
	for _, s := range req.Messages {
		if s < 0 || s >= int64(len(c.msgs)) {
			return EraseResult{}, fmt.Errorf("%w: message %d", ErrNotFound, s)
		}
		targets[s] = true
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return EraseResult{}, err
	}
	prov := ProvenanceRecord{Kind: provForget, Time: e.opts.Now().UnixMilli(), Caller: req.Caller, Reason: req.Reason,
		Salt: hex.EncodeToString(salt), FirstBlock: -1, LastBlock: -1}
	if req.Match != "" {
		prov.Match = saltedHash(salt, req.Match)
	}
	// What the store's records may hold of the erased text: the texts
	// themselves, and as JSON escapes them.
	var erased []string
	var changed []*tree.Node
	var kvs []store.KV
	// Every count is made at once, after the blocks and gists are rebuilt.
	var t tally
	var edited []*msgRecord
	for _, m := range c.msgs {
		var text, name string
		var edits []edit
		n := 0
		switch {
		case targets[m.Seq]:
			text, name = ErasedText, m.Name
			edits = []edit{{0, len(m.Text), 0, len(text)}}
		case req.Match != "":
			var nameEdits []edit
			text, edits = eraseLiteral(m.Text, req.Match)
			name, nameEdits = eraseLiteral(m.Name, req.Match)
			if len(edits)+len(nameEdits) == 0 {
				continue
			}
			n = len(edits) + len(nameEdits)
		default:
			continue
		}
		erased = append(erased, m.Text)
		res.Messages = append(res.Messages, m.Seq)
		res.Occurrences += n
		prov.Messages = append(prov.Messages, m.Seq)
		prov.Hashes = append(prov.Hashes, saltedHash(salt, m.Text))
		blocks := e.eraseBlocks(c, m, text, edits, &t)
		changed = append(changed, blocks...)
		c.rec.Tokens -= m.Tokens
		m.Text, m.Name = text, name
		if m.First >= 0 {
			e.tallySum(&t, c, m)
			e.tagBlocks(c, m, &t)
		} else {
			m.Tokens = 0
			e.tagUnblocked(m, &t)
		}
		edited = append(edited, m)
	}
	res.Blocks = len(changed)
	gists := e.rebuildGists(c, changed, &t)
	res.Gists = len(gists)
	e.settle(&t)
	for _, m := range edited {
		c.rec.Tokens += m.Tokens
		// The client's raw JSON holds the text: it goes; the raw key stays,
		// so that a client resending the old bytes finds the message stored
		// rather than storing the text again.
		m.dropRaw()
		kvs = append(kvs, store.KV{Key: msgKey(k, m.Seq), Value: mustJSON(msgDisk{m, nil})})
	}
	if req.Match != "" {
		erased = append(erased, req.Match)
	}
	for _, b := range changed {
		kvs = append(kvs, store.KV{Key: nodeKey(k, 0, b.Index), Value: mustJSON(b)})
		if b.Index < len(c.vecs) {
			// The vector was the text's: an empty one scores nothing.
			c.vecs[b.Index] = qvec.Vector{}
			kvs = append(kvs, store.KV{Key: vecKey(k, b.Index), Value: string(qvec.Vector{}.Encode())})
		}
	}
	for _, g := range gists {
		kvs = append(kvs, store.KV{Key: nodeKey(k, g.Level, g.Index), Value: mustJSON(g)})
	}
	if len(changed) > 0 {
		prov.FirstBlock, prov.LastBlock = changed[0].Index, changed[len(changed)-1].Index
	}
	respKeys, err := e.responsesQuoting(k, res.Messages, erased)
	if err != nil {
		return EraseResult{}, err
	}
	res.Responses = len(respKeys) / 2
	pkv, err := e.provenanceKV(k, prov)
	if err != nil {
		return EraseResult{}, err
	}
	res.Provenance, _ = seqOfKey(pkv.Key)
	c.rec.Updated = max(c.rec.Updated, prov.Time)
	kvs = append(kvs, pkv, store.KV{Key: headerKey(k), Value: mustJSON(c.rec)})
	// Whatever happens now, the context is loaded again from the store:
	// nothing in memory may keep the text.
	defer func() {
		e.forget(k)
		c.stale = true
		e.costMu.Lock()
		clear(e.costCache)
		e.costMu.Unlock()
	}()
	if err := e.put(c, kvs...); err != nil {
		return EraseResult{}, fmt.Errorf("memory: erase: %w", err)
	}
	if len(respKeys) > 0 {
		if _, err := e.st.Delete(respKeys, nil); err != nil {
			return EraseResult{}, fmt.Errorf("memory: erase responses: %w", err)
		}
	}
	if err := e.st.Compact(); err != nil {
		return EraseResult{}, fmt.Errorf("memory: erase: rewriting the store file: %w", err)
	}
	res.FileBytes = e.st.FileSize()
	// The literal is gone from every record of the context. (An erased
	// whole message's text may still be said by another message: that one
	// is not erased.)
	if req.Match != "" {
		if key, ok := e.stillHolds(k, []string{req.Match}); ok {
			return res, fmt.Errorf("memory: erase: record %s still holds the literal", key)
		}
	}
	return res, nil
}

// saltedHash is "sha256:" and the hex SHA-256 of salt and text: whoever
// holds the text can check it against the record, no table of common
// texts can.
func saltedHash(salt []byte, text string) string {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(text))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// edit is one erased span: old text [OldStart, OldEnd) became new text
// [NewStart, NewEnd).
type edit struct{ oldStart, oldEnd, newStart, newEnd int }

// eraseLiteral replaces every occurrence of lit in s (left to right, not
// overlapping) with ErasedText and returns the new text and its edits.
func eraseLiteral(s, lit string) (string, []edit) {
	var sb strings.Builder
	var edits []edit
	last := 0
	for i := 0; ; {
		j := strings.Index(s[i:], lit)
		if j < 0 {
			break
		}
		start := i + j
		sb.WriteString(s[last:start])
		ns := sb.Len()
		sb.WriteString(ErasedText)
		edits = append(edits, edit{start, start + len(lit), ns, sb.Len()})
		i, last = start+len(lit), start+len(lit)
	}
	if len(edits) == 0 {
		return s, nil
	}
	sb.WriteString(s[last:])
	return sb.String(), edits
}

// eraseBlocks gives m's blocks the text of m's new text, keeping their
// number and order: each block gets what became of its part of the old
// text, an erased span going to the block it started in (a block may be
// left empty). It returns the blocks whose text changed, with their hashes
// updated and their costs asked of t; tagBlocks sets their spans.
func (e *Engine) eraseBlocks(c *mctx, m *msgRecord, text string, edits []edit, t *tally) []*tree.Node {
	if m.First < 0 {
		return nil
	}
	// newPos maps an offset of the old text to the new text: one inside
	// an erased span maps past its marker.
	newPos := func(p int) int {
		d := 0
		for _, ed := range edits {
			switch {
			case p <= ed.oldStart:
				return p + d
			case p < ed.oldEnd:
				return ed.newEnd
			}
			d = ed.newEnd - ed.oldEnd
		}
		return p + d
	}
	var changed []*tree.Node
	off := 0
	for b := m.First; b <= m.Last; b++ {
		n := c.tree.Block(b)
		start, end := off, off+len(n.Text)
		off = end
		nt := text[newPos(start):newPos(end)]
		if nt == n.Text {
			continue
		}
		c.nodeBytes -= nodeFootprint(n, c.textShared(n))
		n.Text = nt
		e.tallyBlock(t, n, c.tree.Block(n.Index-1))
		n.Hash = tree.BlockHash(n)
		c.nodeBytes += nodeFootprint(n, false)
		changed = append(changed, n)
	}
	return changed
}

// tagBlocks tags m's blocks, and m, anew from m's text and name as
// addBlocks does: detected spans where they fall, and whole-block spans of
// exclude rules and of the rules tagged on the whole message (their costs
// asked of t).
func (e *Engine) tagBlocks(c *mctx, m *msgRecord, t *tally) {
	spans := e.opts.Policy.Scan(m.Text)
	nameSpans := e.opts.Policy.Scan(m.Name)
	m.Tags = policy.Tags(slices.Concat(spans, nameSpans, wholeSpans(m.Whole)))
	whole := e.wholeRules(m, spans, nameSpans)
	off := 0
	for i := m.First; i >= 0 && i <= m.Last; i++ {
		b := c.tree.Block(i)
		bs := blockSpans(spans, off, off+len(b.Text))
		for _, r := range whole {
			bs = append([]tree.Span{{Start: 0, End: len(b.Text), Rule: r}}, bs...)
		}
		e.respan(c, b, bs, t)
		off += len(b.Text)
	}
}

// responsesQuoting returns the keys (record and index) of k's served
// responses that end at an erased message or quote erased text.
func (e *Engine) responsesQuoting(k Key, seqs []int64, texts []string) ([]string, error) {
	var keys []string
	rp := recordPrefix(kindResponse, k)
	err := e.st.Scan(rp, func(key, v string) bool {
		var r struct {
			ID  string `json:"id"`
			Seq int64  `json:"seq"`
		}
		_ = json.Unmarshal([]byte(v), &r)
		hit := slices.Contains(seqs, r.Seq)
		for _, t := range texts {
			hit = hit || holds(v, t)
		}
		if hit {
			keys = append(keys, key, responseIndexKey(k.Tenant, r.ID))
		}
		return true
	})
	return keys, err
}

// holds reports whether a stored record holds text, as is or as JSON
// escapes it.
func holds(record, text string) bool {
	if text == "" {
		return false
	}
	if strings.Contains(record, text) {
		return true
	}
	q, _ := json.Marshal(text)
	return strings.Contains(record, string(q[1:len(q)-1])) || strings.Contains(record, strconv.Quote(text)[1:len(strconv.Quote(text))-1])
}

// stillHolds reports a record of k that still holds one of texts.
func (e *Engine) stillHolds(k Key, texts []string) (string, bool) {
	found := ""
	check := func(key, v string) bool {
		for _, t := range texts {
			if holds(v, t) {
				found = key
				return false
			}
		}
		return true
	}
	for _, kind := range recordKinds {
		if e.st.Scan(recordPrefix(kind, k), check); found != "" {
			return found, true
		}
	}
	for _, kind := range singleKinds {
		if v, ok, _ := e.st.Get(singleKey(kind, k)); ok && !check(singleKey(kind, k), v) {
			return found, true
		}
	}
	return "", false
}

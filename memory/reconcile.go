// Reconciling a request's message list with what is stored. Chat clients
// resend the whole conversation every turn, so the list is matched message
// by message with the stored thread, and only the new suffix is ingested.
//
// Two keys identify a stored message. The chain hash (chainHash) covers
// what memory keeps of it (role, name, text) and of every message before
// it: it decides what is the same conversation, what is a branch (an edit or
// a regenerate) and what is new. The raw key (rawKey) covers the client's
// own bytes for the message, given its parent's chain hash: when the client
// resends a message byte for byte, as chat UIs do, the raw key finds it
// without decoding its JSON, extracting its text or hashing that text again.
// A message whose raw key is unknown (the reply the proxy stored, which the
// client writes its own way; a store written before raw keys existed) is
// decoded and matched by chain hash, and its raw key is learned, so the
// next resend finds it by its bytes. The raw key never decides anything the
// chain hash would decide differently: the same bytes after the same parent
// decode to the same message.
//
// A resent history is mostly the list the client sent the turn before: the
// engine remembers the lists that reconciled whole (prefixMark), and a list
// whose leading messages are byte for byte one of those skips even the
// per-message keys for them: one hash over their bytes finds them all. That
// hash is only ever compared within the process, so it is a fast keyed one
// (maphash, 128 bits from two secret seeds) rather than SHA-256.

package memory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"hash/maphash"
	"slices"

	"github.com/megacontext/megacontext/memory/store"
)

// Decoder turns the client's JSON of one request message (Messages[i].Raw)
// into a Message. Its error is returned by Prepare as is.
type Decoder func(i int, raw json.RawMessage) (Message, error)

// rawKey identifies a message by the client's bytes for it and its
// parent's chain hash: the first 16 bytes of a SHA-256.
type rawKey [16]byte

// IsZero reports the absent key (records written before raw keys, replies).
func (k rawKey) IsZero() bool { return k == rawKey{} }

// MarshalText writes the key as hex.
func (k rawKey) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, k[:]), nil }

// UnmarshalText reads a hex key.
func (k *rawKey) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(k) {
		return fmt.Errorf("raw key of %d hex digits, want %d", len(b), 2*len(k))
	}
	_, err := hex.Decode(k[:], b)
	return err
}

// rawHasher computes raw keys with one reused hash state.
type rawHasher struct {
	h   hash.Hash
	buf [sha256.Size]byte
	pre []byte
}

func newRawHasher() *rawHasher { return &rawHasher{h: sha256.New()} }

// key returns the raw key of raw under the parent chain hash parent.
func (r *rawHasher) key(parent string, raw []byte) rawKey {
	r.h.Reset()
	r.pre = append(append(r.pre[:0], parent...), 0)
	r.h.Write(r.pre)
	r.h.Write(raw)
	var k rawKey
	copy(k[:], r.h.Sum(r.buf[:0]))
	return k
}

// reconcile finds how many leading messages of msgs are stored in k's
// thread and returns their sequence numbers and the chain hash to chain
// new messages from.
//
// With decode set, messages may arrive undecoded (only Raw, Role empty):
// those matched by raw key are filled in from the store (role, name, extra
// tokens; the text of the last turns, which the lens reads), the others are
// decoded, every message of the new suffix included, so that on return
// every message is decoded. msgs is updated in place.
//
// Raw keys learned here (a message matched by chain hash whose raw key was
// unknown) are kept in memory; when persist is set, those the store does
// not have yet are returned as records to write with the request's other
// records.
//
// whole is the hash of the whole list's raw bytes (zero when some message
// has none): once every message is stored, remember(whole, ...) lets the
// next resend find them all at once.
func (e *Engine) reconcile(c *mctx, k Key, msgs []Message, decode Decoder, persist bool) (seqs []int64, prevHash string, learned []store.KV, whole listSum, err error) {
	prevHash = threadSeed(k.Thread)
	i := 0
	mark, ok, whole := c.knownPrefix(k, msgs)
	if ok {
		seqs = c.chainTo(mark.last, mark.n)
		for j, seq := range seqs {
			rec := c.msgs[seq]
			msgs[j].Role, msgs[j].Name, msgs[j].Extra = rec.Role, rec.Name, rec.Extra
		}
		i, prevHash = mark.n, c.msgs[mark.last].Hash
	}
	rh := newRawHasher()
	for ; i < len(msgs); i++ {
		m := &msgs[i]
		var rk rawKey
		if len(m.Raw) > 0 {
			rk = rh.key(prevHash, m.Raw)
			if seq, ok := c.byRaw[rk]; ok {
				rec := c.msgs[seq]
				m.Role, m.Name, m.Extra = rec.Role, rec.Name, rec.Extra
				seqs = append(seqs, seq)
				prevHash = rec.Hash
				continue
			}
		}
		if err := decodeAt(msgs, i, decode); err != nil {
			return nil, "", nil, whole, err
		}
		h := chainHash(prevHash, *m)
		seq, ok := c.byHash[h]
		if !ok {
			break
		}
		if !rk.IsZero() {
			if kv, ok, err := e.learnRawKey(c, c.msgs[seq], rk, m.Extra, persist); err != nil {
				return nil, "", nil, whole, err
			} else if ok {
				learned = append(learned, kv)
			}
		}
		seqs = append(seqs, seq)
		prevHash = h
	}
	for j := i + 1; j < len(msgs); j++ {
		if err := decodeAt(msgs, j, decode); err != nil {
			return nil, "", nil, whole, err
		}
	}
	e.fillText(c, msgs, seqs)
	return seqs, prevHash, learned, whole, nil
}

// decodeAt decodes msgs[i] in place when it is undecoded.
func decodeAt(msgs []Message, i int, decode Decoder) error {
	m := &msgs[i]
	if decode == nil || m.Role != "" {
		return nil
	}
	d, err := decode(i, m.Raw)
	if err != nil {
		return err
	}
	if d.Raw == nil {
		d.Raw = m.Raw
	}
	*m = d
	return nil
}

// learnRawKey records that rk names the stored message rec (and that the
// message costs extra tokens beyond its text). A message keeps one raw
// key in memory, the latest; the store keeps the first one learned, so a
// client whose bytes change every time costs no writes. It returns the
// updated record to persist when persist is set and the store has none.
func (e *Engine) learnRawKey(c *mctx, rec *msgRecord, rk rawKey, extra int, persist bool) (store.KV, bool, error) {
	if rec.RawKey == rk {
		return store.KV{}, false, nil
	}
	if !rec.RawKey.IsZero() {
		delete(c.byRaw, rec.RawKey)
	}
	rec.RawKey, rec.Extra = rk, extra
	c.byRaw[rk] = rec.Seq
	if !persist || rec.rawSaved {
		return store.KV{}, false, nil
	}
	kv, err := e.msgRecordKV(c, rec)
	if err != nil {
		return store.KV{}, false, err
	}
	rec.rawSaved = true
	return kv, true, nil
}

// fillText gives the stored messages among the last turns of msgs their
// text when it was not decoded (a match by raw key): the lens queries the
// last user message and the messages after it.
func (e *Engine) fillText(c *mctx, msgs []Message, seqs []int64) {
	from := max(0, len(msgs)-queryTail)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			from = min(from, i)
			break
		}
	}
	for i := from; i < len(seqs); i++ {
		if msgs[i].Text == "" {
			msgs[i].Text = c.msgs[seqs[i]].Text
		}
	}
}

// prefixMark remembers a request's message list that reconciled whole, by
// the hash of the client's bytes for it (prefixSum): a later list that
// starts with the same bytes starts with the same stored messages.
type prefixMark struct {
	// n is the number of messages; last is the sequence number of the last,
	// whose parents are the others.
	n    int
	last int64
	sum  listSum
}

// listSum is the hash of a message list's raw bytes (prefixHasher); zero
// for a list with a message lacking them.
type listSum [2]uint64

// listSeeds key the list hashes of one process.
var listSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// maxPrefixMarks is how many lists a context remembers (several chats may
// share one MegaContext).
const maxPrefixMarks = 8

// prefixHasher hashes the raw bytes of a list's leading messages.
type prefixHasher struct {
	h [2]maphash.Hash
}

func newPrefixHasher(k Key) *prefixHasher {
	p := &prefixHasher{}
	for i := range p.h {
		p.h[i].SetSeed(listSeeds[i])
		p.h[i].WriteString(threadSeed(k.Thread))
	}
	return p
}

// add appends one message's raw bytes, length first.
func (p *prefixHasher) add(raw []byte) {
	for i := range p.h {
		maphash.WriteComparable(&p.h[i], len(raw))
		p.h[i].Write(raw)
	}
}

func (p *prefixHasher) sum() listSum { return listSum{p.h[0].Sum64(), p.h[1].Sum64()} }

// knownPrefix returns the longest remembered list that msgs starts with,
// byte for byte, and the hash of all of msgs (zero unless every message
// has its raw bytes).
func (c *mctx) knownPrefix(k Key, msgs []Message) (best prefixMark, found bool, whole listSum) {
	p := newPrefixHasher(k)
	for i, m := range msgs {
		if len(m.Raw) == 0 {
			return best, found, whole
		}
		p.add(m.Raw)
		for _, mk := range c.marks {
			if mk.n == i+1 && mk.n > best.n && p.sum() == mk.sum {
				best, found = mk, true
			}
		}
	}
	return best, found, p.sum()
}

// chainTo returns the sequence numbers of the n messages ending at last.
func (c *mctx) chainTo(last int64, n int) []int64 {
	seqs := make([]int64, n)
	for i := n - 1; i >= 0; i-- {
		seqs[i] = last
		last = c.msgs[last].Parent
	}
	return seqs
}

// remember marks a list whose raw bytes hash to whole (knownPrefix), all
// of it stored as seqs, as a known list.
func (c *mctx) remember(whole listSum, seqs []int64) {
	if len(seqs) == 0 || whole == (listSum{}) {
		return
	}
	mk := prefixMark{n: len(seqs), last: seqs[len(seqs)-1], sum: whole}
	if i := slices.Index(c.marks, mk); i >= 0 {
		c.marks = slices.Delete(c.marks, i, i+1)
	}
	if len(c.marks) == maxPrefixMarks {
		c.marks = c.marks[1:]
	}
	c.marks = append(c.marks, mk)
}

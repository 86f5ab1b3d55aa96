// Served responses kept for retrieval and chaining (the Responses API's
// store and previous_response_id): each is stored under its MegaContext,
// with a tenant-wide index from its id, and remembers where its
// conversation ends in the context's message tree.

package memory

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory/store"
)

// ResponseRecord is a served response. The object is opaque to memory: the
// proxy's JSON of the response as the client saw it.
type ResponseRecord struct {
	// ID is the response id, unique in its tenant.
	ID string `json:"id"`
	// Thread is the thread hint of the conversation (Key.Thread), so that a
	// continuation chains from the same hash seed.
	Thread string `json:"thread,omitempty"`
	// Seq is the sequence number of the conversation's last stored message:
	// the reply, or the last input message when nothing was replied; -1
	// when the conversation stored nothing.
	Seq int64 `json:"seq"`
	// Object is the response object.
	Object json.RawMessage `json:"object"`
	// Time is when the record was stored, in Unix milliseconds.
	Time int64 `json:"time"`
}

var responseIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// encode writes the record as encoding/json would, without validating the
// object again (the proxy built it; Object must be valid JSON), which would
// cost more than the rest of storing it.
func (r ResponseRecord) encode() string {
	b := append([]byte(`{"id":`), strconv.Quote(r.ID)...) // the id is [A-Za-z0-9_-]
	if r.Thread != "" {
		b = gjson.AppendJSONString(append(b, `,"thread":`...), r.Thread)
	}
	b = strconv.AppendInt(append(b, `,"seq":`...), r.Seq, 10)
	b = append(append(append(b, `,"object":`...), r.Object...), `,"time":`...)
	b = strconv.AppendInt(b, r.Time, 10)
	return string(append(b, '}'))
}

// StoreResponse stores a reply to message parent (Window.LastSeq; since is
// Window.NextSeq, as for AppendResponse) and the served response record,
// in one write, and returns the reply's sequence number. reply may be nil
// when there is nothing to store (the record's Seq is then parent); rec may
// be nil when the response is not kept (the client asked store: false). A
// reply already stored (the client's next turn raced ahead with its own
// copy) is not stored again: its sequence number is returned.
func (e *Engine) StoreResponse(k Key, parent, since int64, reply *Message, partial bool, rec *ResponseRecord) (int64, error) {
	if rec != nil && !responseIDRE.MatchString(rec.ID) {
		return -1, fmt.Errorf("%w: response id %q", ErrBadKey, rec.ID)
	}
	return retry(e, k, func() (int64, error) { return e.storeResponse(k, parent, since, reply, partial, rec) })
}

func (e *Engine) storeResponse(k Key, parent, since int64, reply *Message, partial bool, rec *ResponseRecord) (int64, error) {
	// The reply follows the request this replica prepared: its cache holds
	// the parent, unless it dropped the context since.
	c, err := e.acquireWriter(k, true)
	if err != nil {
		return -1, err
	}
	if parent >= int64(len(c.msgs)) && e.shared != nil {
		c.mu.Unlock()
		if c, err = e.acquire(k, true); err != nil {
			return -1, err
		}
	}
	defer c.mu.Unlock()
	if parent < -1 || parent >= int64(len(c.msgs)) || (parent < 0 && reply != nil) {
		return -1, fmt.Errorf("memory: response parent %d out of range", parent)
	}
	seq := parent
	var p pending
	if reply != nil {
		if err := checkMessages([]Message{*reply}); err != nil {
			return -1, err
		}
		prevHash := c.msgs[parent].Hash
		if dup, ok := c.byHash[chainHash(prevHash, *reply)]; ok {
			seq = dup
		} else {
			// Its counts join the next ingest's batch: storing a reply makes
			// no round trip to a remote tokenizer.
			pp, seqs, err := e.appendMessages(c, parent, prevHash, []Message{*reply}, []bool{false}, partial, e.opts.Now(), since, false, countLater)
			if err != nil {
				e.forget(k)
				c.stale = true
				return -1, fmt.Errorf("memory: store response: %w", err)
			}
			p, seq = *pp, seqs[0]
		}
	}
	if rec != nil {
		r := *rec
		r.Thread, r.Seq, r.Time = k.Thread, seq, e.opts.Now().UnixMilli()
		p.kvs = append(p.kvs,
			store.KV{Key: responseKey(k, r.ID), Value: r.encode()},
			store.KV{Key: responseIndexKey(k.Tenant, r.ID), Value: k.Context})
	}
	if err := e.put(c, p.kvs...); err != nil {
		e.forget(k)
		c.stale = true
		return -1, fmt.Errorf("memory: store response: %w", err)
	}
	if reply != nil && seq != parent {
		e.pokeEmbedder(k)
		e.account(c)
	}
	return seq, nil
}

// Response returns a stored response of the tenant and the MegaContext
// it belongs to, or ErrNotFound.
func (e *Engine) Response(tenant, id string) (Key, ResponseRecord, error) {
	if !tenantRE.MatchString(tenant) {
		return Key{}, ResponseRecord{}, fmt.Errorf("%w: tenant %q", ErrBadKey, tenant)
	}
	if !responseIDRE.MatchString(id) {
		return Key{}, ResponseRecord{}, ErrNotFound
	}
	ctxID, ok, err := e.st.Get(responseIndexKey(tenant, id))
	if err != nil || !ok {
		return Key{}, ResponseRecord{}, notFoundOr(err)
	}
	k := Key{Tenant: tenant, Context: ctxID}
	v, ok, err := e.st.Get(responseKey(k, id))
	if err != nil || !ok {
		return Key{}, ResponseRecord{}, notFoundOr(err)
	}
	var rec ResponseRecord
	if err := unmarshal(v, &rec); err != nil {
		return Key{}, ResponseRecord{}, fmt.Errorf("memory: decode response %q: %w", id, err)
	}
	k.Thread = rec.Thread
	return k, rec, nil
}

func notFoundOr(err error) error {
	if err != nil {
		return err
	}
	return ErrNotFound
}

// DeleteResponse forgets a stored response: it can no longer be retrieved
// or continued. The conversation stays in the MegaContext's memory.
func (e *Engine) DeleteResponse(tenant, id string) error {
	k, _, err := e.Response(tenant, id)
	if err != nil {
		return err
	}
	c, err := e.acquire(k, false)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	n, err := e.st.Delete([]string{responseKey(k, id), responseIndexKey(k.Tenant, id)}, nil)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return err
}

// Conversation returns the stored messages of the thread that ends at
// message seq, oldest first: what a continuation of it resends.
func (e *Engine) Conversation(k Key, seq int64) ([]Message, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if seq < -1 || seq >= int64(len(c.msgs)) {
		return nil, fmt.Errorf("memory: message %d out of range", seq)
	}
	var out []Message
	for s := seq; s >= 0; s = c.msgs[s].Parent {
		m := c.msgs[s]
		// The raw JSON stays in the store only.
		v, _, err := e.st.Get(msgKey(c.key, s))
		if err != nil {
			return nil, err
		}
		out = append(out, Message{Role: m.Role, Name: m.Name, Text: m.Text, Raw: storedRaw(v), Extra: m.Extra})
		if len(out) > len(c.msgs) {
			return nil, fmt.Errorf("memory: message %d: parent chain loops", seq)
		}
	}
	slices.Reverse(out)
	return out, nil
}

package memory

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/jsondepth"
	"github.com/megacontext/megacontext/memory/tree"
)

// Reading records back must never make a context unreadable. What is
// written is checked first (checkMessages: a message's raw JSON nests at
// most jsondepth.Limit levels, so encoding/json, which refuses 10,000, always
// reads the record back), and what still fails to decode (a record written
// by an older version, a damaged file) is recovered as far as it can be and
// logged, never allowed to fail the whole context: a user would rather lose
// one message's raw JSON, or one message, than the lifelong memory around it.

// checkMessages refuses messages whose records could not be stored and read
// back: a raw JSON object that is invalid or nests deeper than
// jsondepth.Limit. It runs before anything is changed, so a refused request
// leaves memory as it was.
func checkMessages(msgs []Message) error {
	for i, m := range msgs {
		if len(m.Raw) == 0 {
			continue
		}
		if jsondepth.Exceeds(m.Raw, jsondepth.Limit) {
			return fmt.Errorf("%w: message %d nests JSON deeper than %d levels", ErrBadMessage, i, jsondepth.Limit)
		}
		if !json.Valid(m.Raw) {
			return fmt.Errorf("%w: message %d is not valid JSON", ErrBadMessage, i)
		}
	}
	return nil
}

// decodeMessage reads a stored message record (memory's part of it: the raw
// JSON stays in the store). A record encoding/json refuses (one whose raw
// JSON nests 10,000 levels, stored before nesting was bounded) is read
// field by field with gjson, which needs no recursion to skip the raw JSON;
// a record that is not even a JSON object becomes a damaged placeholder.
// The sequence number always comes from the key, which orders the scan.
func (e *Engine) decodeMessage(k Key, key, val string) *msgRecord {
	seq, _ := seqOfKey(key)
	m := &msgRecord{}
	err := json.Unmarshal([]byte(val), m)
	if err == nil && m.Seq == seq {
		// A key can be spelt this way only as a key (quotes inside strings
		// are escaped): its absence means the record holds no raw JSON.
		m.rawNone = !strings.Contains(val, `"raw":`)
		if m.Uncounted && !m.rawNone {
			m.raw = storedRaw(val) // to be stored again by the next ingest
		}
		return m
	}
	if err == nil {
		err = fmt.Errorf("sequence %d under the key of %d", m.Seq, seq)
	}
	// gjson's Get walks nested values without recursion, whatever the depth.
	r := gjson.Parse(val)
	if !r.IsObject() {
		// Nothing to salvage: a placeholder that no resent message matches
		// and that renders nothing, so the rest of the context still works.
		e.log.Error("stored message unreadable; kept as an empty placeholder", "tenant", k.Tenant, "context", k.Context, "seq", seq, "err", err)
		return damagedMessage(seq)
	}
	m = &msgRecord{Seq: seq}
	m.Parent = r.Get("parent").Int()
	m.Hash = r.Get("hash").Str
	m.Role = r.Get("role").Str
	m.Name = r.Get("name").Str
	m.Text = r.Get("text").Str
	m.Time = r.Get("time").Int()
	m.Partial = r.Get("partial").Bool()
	m.Superseded = r.Get("superseded").Bool()
	for _, t := range r.Get("tags").Array() {
		m.Tags = append(m.Tags, t.Str)
	}
	m.First, m.Last = -1, -1
	if f := r.Get("first"); f.Exists() {
		m.First, m.Last = int(f.Int()), int(r.Get("last").Int())
	}
	m.Tokens = int(r.Get("tokens").Int())
	m.Extra = int(r.Get("extra").Int())
	if rk := r.Get("rk"); rk.Type == gjson.String {
		_ = m.RawKey.UnmarshalText([]byte(rk.Str)) // a bad key is the zero key: matched by chain hash
	}
	if m.Hash == "" {
		m.Hash, m.Damaged = "damaged:"+strconv.FormatInt(seq, 10), true
	}
	e.log.Warn("stored message read field by field", "tenant", k.Tenant, "context", k.Context, "seq", seq, "err", err)
	return m
}

// storedRaw returns the raw JSON of a stored message record, or nil when
// it has none that could be stored again (a record of an older version
// whose raw JSON nests too deeply, a damaged one).
func storedRaw(val string) json.RawMessage {
	raw := gjson.Get(val, "raw")
	if !raw.Exists() || jsondepth.Exceeds(raw.Raw, jsondepth.Limit) || !json.Valid([]byte(raw.Raw)) {
		return nil
	}
	return json.RawMessage(raw.Raw)
}

// damagedMessage is the placeholder of a message record that is missing.
func damagedMessage(seq int64) *msgRecord {
	return &msgRecord{Seq: seq, Parent: -1, Role: "system", Hash: "damaged:" + strconv.FormatInt(seq, 10), First: -1, Last: -1, Superseded: true, Damaged: true}
}

// errUnreadable is a record that is not valid JSON.
var errUnreadable = errors.New("not valid JSON")

// restoreNode adds a stored tree node to c's tree. A node that does not
// decode is rebuilt: a gist from its children (restored before it, as lower
// levels sort first), a block as an empty block of the message before it.
func (e *Engine) restoreNode(c *mctx, key, val string) error {
	var n *tree.Node
	err := errUnreadable
	// DecodeNode reads valid JSON only; it is checked first, bounded.
	if !jsondepth.Exceeds(val, jsondepth.Limit) && gjson.Valid(val) {
		n, err = tree.DecodeNode(val)
	}
	if err == nil {
		if err := c.tree.Restore(n); err != nil {
			return err
		}
		if n.Level == 0 {
			c.index.Add(n.Text)
			c.shareText(n)
		}
		shared := c.textShared(n)
		if !shared {
			n.Text = strings.Clone(n.Text) // DecodeNode's text is a slice of the record
		}
		c.nodeBytes += nodeFootprint(n, shared)
		return nil
	}
	level, index, ok := nodeOfKey(key)
	if !ok {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	e.log.Error("stored tree node unreadable; rebuilt", "tenant", c.key.Tenant, "context", c.key.Context, "level", level, "index", index, "err", err)
	if level > 0 {
		if err := c.tree.RestoreGist(level, index); err != nil {
			return err
		}
		c.nodeBytes += nodeFootprint(c.tree.Node(level, index), false)
		return nil
	}
	b := &tree.Node{Level: 0, Index: index, First: index, Last: index}
	if prev := c.tree.Block(index - 1); prev != nil {
		b.Msg, b.Role, b.Time, b.TimeEnd, b.Part = prev.Msg, prev.Role, prev.TimeEnd, prev.TimeEnd, prev.Part+1
	}
	b.Hash = tree.BlockHash(b)
	c.index.Add("")
	c.nodeBytes += nodeFootprint(b, false)
	return c.tree.Restore(b)
}

// decodeHeader reads a context header; one that does not decode is rebuilt
// from the messages once they are loaded (rebuildHeader).
func decodeHeader(val string, rec *ctxRecord) bool {
	return json.Unmarshal([]byte(val), rec) == nil
}

// rebuildHeader recomputes a context header from its loaded messages.
func rebuildHeader(c *mctx) {
	c.rec = ctxRecord{Messages: len(c.msgs)}
	for _, m := range c.msgs {
		c.rec.Tokens += m.Tokens
		if c.rec.Created == 0 || (m.Time > 0 && m.Time < c.rec.Created) {
			c.rec.Created = m.Time
		}
		c.rec.Updated = max(c.rec.Updated, m.Time)
	}
}

// seqOfKey parses the sequence number at the end of a message key.
func seqOfKey(key string) (int64, bool) {
	i := strings.LastIndexByte(key, ':')
	seq, err := strconv.ParseInt(key[i+1:], 10, 64)
	return seq, err == nil
}

// nodeOfKey parses the level and index at the end of a node key.
func nodeOfKey(key string) (level, index int, ok bool) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return 0, 0, false
	}
	j := strings.LastIndexByte(key[:i], ':')
	l, err1 := strconv.Atoi(key[j+1 : i])
	x, err2 := strconv.Atoi(key[i+1:])
	return l, x, err1 == nil && err2 == nil && j >= 0
}

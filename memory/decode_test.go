package memory

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/sjson"

	"github.com/megacontext/megacontext/memory/store"
)

// nested returns a JSON message object whose content part nests depth
// levels in all (the object itself included).
func nested(depth int) json.RawMessage {
	inner := depth - 1
	return json.RawMessage(`{"role":"user","content":"deep","x":` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `}`)
}

// A message whose raw JSON nests too deeply is refused before anything is
// stored: with a field 10,000 levels deep (10,001 with the message object)
// encoding it panicked and the process died; at 9,999 it was stored and its
// record could never be decoded again.
func TestDeepRawRefused(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, dir)
	k := Key{Tenant: "t", Context: "deep"}
	if _, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "hello there")}, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	for _, depth := range []int{129, 10000, 10001, 100000} {
		m := Message{Role: "user", Text: "deep", Raw: nested(depth)}
		_, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "hello there"), m}, Budget: 2000, PerMessage: 4, TailPercent: 40})
		if !errors.Is(err, ErrBadMessage) {
			t.Fatalf("depth %d: err %v, want ErrBadMessage", depth, err)
		}
		if err := e.AppendResponse(k, 0, 1, Message{Role: "assistant", Text: "deep", Raw: nested(depth)}, false); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("response of depth %d: err %v, want ErrBadMessage", depth, err)
		}
	}
	ok := Message{Role: "user", Text: "fine", Raw: nested(64)}
	if _, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "hello there"), ok}, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatalf("depth 64: %v", err)
	}
	e.Close()
	e = openEngine(t, dir)
	st, err := e.Stats(k)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if st.Messages != 2 || st.Damaged != 0 {
		t.Fatalf("after reload: %d messages, %d damaged; want 2 and 0", st.Messages, st.Damaged)
	}
}

// Records that do not decode (written by an older version, or damaged)
// never make the context unreadable: a message whose raw JSON nests 9,999
// levels keeps its text, a record that is not JSON becomes a placeholder,
// unreadable tree nodes and headers are rebuilt, and the context goes on
// working: stats, messages, new turns, delete.
func TestUnreadableRecordsRecovered(t *testing.T) {
	embeddedOnly(t)
	dir := t.TempDir()
	e := openEngine(t, dir)
	k := Key{Tenant: "t", Context: "old"}
	conv := conversation(40, 11)
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	before, err := e.Stats(k)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.NodesPerLevel) < 2 {
		t.Fatalf("setup: want gist nodes, got %v", before.NodesPerLevel)
	}
	get := func(key string) string {
		v, found, err := e.st.Get(key)
		if err != nil || !found {
			t.Fatalf("get %s: %v %v", key, found, err)
		}
		return v
	}
	// What the old code stored for a message with a field nested 9,999
	// levels deep: the record adds one level, past encoding/json's 10,000.
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	rec3, err := sjson.SetRaw(get(msgKey(k, 3)), "raw", deep)
	if err != nil {
		t.Fatal(err)
	}
	var probe msgRecord
	if json.Unmarshal([]byte(rec3), &probe) == nil {
		t.Fatal("setup: the deep record decodes")
	}
	if err := e.st.Put(
		store.KV{Key: msgKey(k, 3), Value: rec3},
		store.KV{Key: msgKey(k, 5), Value: "\x00garbage"},
		store.KV{Key: nodeKey(k, 0, 2), Value: "{not json"},
		store.KV{Key: nodeKey(k, 1, 0), Value: "[1,2"},
		store.KV{Key: headerKey(k), Value: "nope"},
	); err != nil {
		t.Fatal(err)
	}
	e.Close()

	e = openEngine(t, dir)
	if ids, err := e.List("t"); err != nil || len(ids) != 1 || ids[0].ID != "old" {
		t.Fatalf("list: %v %v", ids, err)
	}
	st, err := e.Stats(k)
	if err != nil {
		t.Fatalf("stats after reload: %v", err)
	}
	// The unreadable block made the tree disagree with the messages: it
	// was rebuilt from them (repair.go), and the garbage record got back
	// its text from its blocks and its chain from its child's hash.
	if st.Messages != before.Messages || st.Blocks != before.Blocks || st.Damaged != 0 {
		t.Errorf("stats: %d messages, %d blocks, %d damaged; want %d, %d, 0", st.Messages, st.Blocks, st.Damaged, before.Messages, before.Blocks)
	}
	msgs, err := e.Messages(k, 0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[3].Text != conv[3].Text {
		t.Errorf("message 3 lost its text: %q", msgs[3].Text)
	}
	if msgs[5].Text != conv[5].Text || msgs[5].Role != conv[5].Role {
		t.Errorf("the garbage record of message 5 reads %s %q", msgs[5].Role, msgs[5].Text)
	}
	// The conversation goes on: the resent history matches, and the new
	// turn is stored and answered.
	next := append(append([]Message(nil), conv...), msg("user", "what was the fact again?"))
	w, err := e.Prepare(Request{Key: k, Messages: next, Budget: 3000, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatalf("new turn: %v", err)
	}
	if w.Memory == "" && w.TailFrom > 0 {
		t.Error("new turn: no memory rendered")
	}
	// An edit right before the deep message supersedes it: its record is
	// rewritten, the raw JSON that can no longer be stored dropped.
	edit := append(append([]Message(nil), conv[:3]...), msg("user", "an edited turn"))
	if _, err := e.Prepare(Request{Key: k, Messages: edit, Budget: 3000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatalf("edit before the deep message: %v", err)
	}
	if st, err := e.Stats(k); err != nil || st.Superseded == 0 {
		t.Fatalf("after the edit: %+v %v", st, err)
	}
	if err := e.Delete(k); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// FuzzStoredMessage: whatever raw JSON a message carries, the engine either
// refuses it (ErrBadMessage) or stores a record that reads back whole.
func FuzzStoredMessage(f *testing.F) {
	for _, raw := range []string{`{"role":"user","content":"hi"}`, `{"a":"\"[[["}`, string(nested(128)), string(nested(129)),
		string(nested(10000)), string(nested(10001)), `{`, `{"role":"user","content":"\ud800"}`, "{\"x\":\"\xff\"}", `[1]`, ``} {
		f.Add([]byte(raw), "hello")
	}
	e, err := testOpen(f, Options{Now: fixedClock()})
	if err != nil {
		f.Fatal(err)
	}
	defer e.Close()
	n := 0
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		n++
		k := Key{Tenant: "t", Context: "fuzz" + strconv.Itoa(n)}
		_, err := e.Prepare(Request{Key: k, Messages: []Message{{Role: "user", Text: text, Raw: raw}}, Budget: 1 << 20, PerMessage: 4, TailPercent: 40})
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		val, found, err := e.st.Get(msgKey(k, 0))
		if err != nil || !found {
			t.Fatalf("record: %v %v", found, err)
		}
		// Text reads back as JSON keeps it: invalid UTF-8 becomes U+FFFD.
		var want string
		if b, err := json.Marshal(text); err != nil || json.Unmarshal(b, &want) != nil {
			t.Fatal(err)
		}
		if m := e.decodeMessage(k, msgKey(k, 0), val); m.Damaged || m.Text != want {
			t.Fatalf("stored record does not read back: %+v", m)
		}
	})
}

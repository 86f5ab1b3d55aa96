package memory

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

// wire is a test client's JSON of a message; Extra stands for what images
// would cost.
type wire struct {
	Role    string `json:"role"`
	Name    string `json:"name,omitempty"`
	Content string `json:"content"`
	Extra   int    `json:"extra,omitempty"`
}

// encodeWire writes a message the way a client would, in one of two
// styles (so that the same message can arrive as other bytes).
func encodeWire(m Message, style int) json.RawMessage {
	if style%2 == 1 {
		b, _ := json.MarshalIndent(map[string]any{"content": m.Text, "role": m.Role, "name": m.Name, "extra": m.Extra}, "", " ")
		return b
	}
	b, _ := json.Marshal(wire{Role: m.Role, Name: m.Name, Content: m.Text, Extra: m.Extra})
	return b
}

// countingDecoder decodes wire messages and counts its calls.
type countingDecoder struct{ calls int }

func (d *countingDecoder) decode(_ int, raw json.RawMessage) (Message, error) {
	d.calls++
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return Message{}, err
	}
	return Message{Role: w.Role, Name: w.Name, Text: w.Content, Extra: w.Extra, Raw: raw}, nil
}

// undecoded returns the client's view of msgs: only the raw JSON.
func undecoded(msgs []Message, style func(i int) int) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{Raw: encodeWire(m, style(i))}
	}
	return out
}

func plain(int) int { return 0 }

// TestResendDecodesOnlyWhatIsNotStored: a client that resends the whole
// history every turn, through raw keys, has at most two messages decoded
// per turn however long the history (its own copy of the last reply, which
// the proxy stored in its own words, and the new message), with the same
// windows as when every message is decoded; after a restart too.
func TestResendDecodesOnlyWhatIsNotStored(t *testing.T) {
	dir, refDir := t.TempDir(), t.TempDir()
	raw := openEngine(t, dir)
	ref := openEngine(t, refDir)
	k := Key{Tenant: "t", Context: "resend"}
	conv := conversation(40, 3)
	dec := &countingDecoder{}
	for turn := 1; turn*2 < len(conv); turn++ {
		msgs := conv[:turn*2] // system, user, assistant, ..., user
		if turn == 25 {       // a restart: memory reloads from the store
			raw.Close()
			raw = openEngine(t, dir)
			ref.Close() // (focus hysteresis starts afresh too)
			ref = openEngine(t, refDir)
		}
		dec.calls = 0
		req := Request{Key: k, Messages: undecoded(msgs, plain), Decode: dec.decode, Budget: 1500, PerMessage: 4, TailPercent: 40}
		w, err := raw.Prepare(req)
		if err != nil {
			t.Fatal(err)
		}
		if turn > 1 && dec.calls > 2 {
			t.Fatalf("turn %d: %d of %d messages decoded, want at most 2", turn, dec.calls, len(msgs))
		}
		for i, m := range req.Messages {
			if m.Role != msgs[i].Role || (i >= len(msgs)-2 && m.Text != msgs[i].Text) {
				t.Fatalf("turn %d: message %d filled as %q %q, want %q %q", turn, i, m.Role, m.Text, msgs[i].Role, msgs[i].Text)
			}
		}
		wr, err := ref.Prepare(Request{Key: k, Messages: msgs, Budget: 1500, PerMessage: 4, TailPercent: 40})
		if err != nil {
			t.Fatal(err)
		}
		if w.NewMessages != wr.NewMessages || w.LastSeq != wr.LastSeq || w.Tokens != wr.Tokens || w.Memory != wr.Memory || w.TailFrom != wr.TailFrom {
			t.Fatalf("turn %d: window differs from the decoded path: new %d/%d last %d/%d tokens %d/%d tail %d/%d", turn, w.NewMessages, wr.NewMessages, w.LastSeq, wr.LastSeq, w.Tokens, wr.Tokens, w.TailFrom, wr.TailFrom)
		}
		// The proxy stores the reply with its own JSON of it.
		reply := conv[turn*2]
		for _, e := range []*Engine{raw, ref} {
			if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, Message{Role: "assistant", Text: reply.Text, Raw: []byte(`{"role":"assistant","content":` + fmt.Sprintf("%q", reply.Text) + `}`)}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRawKeysMatchLikeChainHashProperty: whatever a client does (resend,
// continue, edit an earlier message, regenerate, write messages with other
// bytes, name a thread), matching by raw keys decides exactly what matching
// by chain hash decides.
func TestRawKeysMatchLikeChainHashProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		rawClock := fixedClock()
		raw, err := testOpen(t, Options{Dir: dir, Now: rawClock})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { raw.Close() }()
		refDir, refClock := t.TempDir(), fixedClock()
		ref, err := testOpen(t, Options{Dir: refDir, Now: refClock})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { ref.Close() }()
		dec := &countingDecoder{}
		k := Key{Tenant: "t", Context: "p", Thread: rapid.SampledFrom([]string{"", "chat-1"}).Draw(rt, "thread")}
		words := []string{"alpha", "beta", "gamma", "delta", "tea"}
		say := func(label string) string {
			return strings.Join(rapid.SliceOfN(rapid.SampledFrom(words), 1, 6).Draw(rt, label), " ")
		}
		conv := []Message{{Role: "system", Text: "Be brief."}}
		styles := map[int]int{}
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch op := rapid.IntRange(0, 5).Draw(rt, "op"); {
			case op <= 1 || len(conv) < 3:
				conv = append(conv, Message{Role: "user", Text: say("user"), Extra: rapid.SampledFrom([]int{0, 0, 1024}).Draw(rt, "extra")})
			case op == 2: // edit an earlier message: a branch
				i := rapid.IntRange(1, len(conv)-1).Draw(rt, "edit")
				conv = append(conv[:i:i], Message{Role: conv[i].Role, Text: say("edited")})
			case op == 3: // regenerate: resend without the last reply
				if conv[len(conv)-1].Role == "assistant" {
					conv = conv[:len(conv)-1]
				}
			case op == 4: // other bytes for the same message
				styles[rapid.IntRange(0, len(conv)-1).Draw(rt, "restyle")]++
			case op == 5: // a restart (of both: focus hysteresis starts afresh)
				raw.Close()
				if raw, err = testOpen(t, Options{Dir: dir, Now: rawClock}); err != nil {
					rt.Fatal(err)
				}
				ref.Close()
				if ref, err = testOpen(t, Options{Dir: refDir, Now: refClock}); err != nil {
					rt.Fatal(err)
				}
			}
			req := Request{Key: k, Messages: undecoded(conv, func(i int) int { return styles[i] }), Decode: dec.decode, Budget: 400, PerMessage: 4, TailPercent: 40}
			w, err := raw.Prepare(req)
			wr, rerr := ref.Prepare(Request{Key: k, Messages: conv, Budget: 400, PerMessage: 4, TailPercent: 40})
			if (err == nil) != (rerr == nil) {
				rt.Fatalf("step %d: %v / %v", s, err, rerr)
			}
			if err != nil {
				continue
			}
			if w.NewMessages != wr.NewMessages || w.LastSeq != wr.LastSeq || w.NextSeq != wr.NextSeq || w.Tokens != wr.Tokens || w.Memory != wr.Memory || w.TailFrom != wr.TailFrom {
				rt.Fatalf("step %d: raw path new %d last %d next %d tokens %d tail %d; decoded path %d %d %d %d %d\n%q\n%q", s, w.NewMessages, w.LastSeq, w.NextSeq, w.Tokens, w.TailFrom, wr.NewMessages, wr.LastSeq, wr.NextSeq, wr.Tokens, wr.TailFrom, w.Memory, wr.Memory)
			}
			if rapid.Bool().Draw(rt, "reply") && w.LastSeq >= 0 {
				reply := Message{Role: "assistant", Text: say("reply"), Raw: []byte(`{"proxy":true}`)}
				if err := raw.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
					rt.Fatal(err)
				}
				if err := ref.AppendResponse(k, wr.LastSeq, wr.NextSeq, reply, false); err != nil {
					rt.Fatal(err)
				}
				conv = append(conv, Message{Role: "assistant", Text: reply.Text})
			}
		}
		a, _ := raw.Stats(k)
		b, _ := ref.Stats(k)
		a.Created, a.Updated, b.Created, b.Updated = b.Created, b.Updated, a.Created, a.Updated
		if fmt.Sprint(a.Messages, a.Tokens, a.Threads, a.Superseded, a.NodesPerLevel) != fmt.Sprint(b.Messages, b.Tokens, b.Threads, b.Superseded, b.NodesPerLevel) {
			rt.Fatalf("stats differ: raw %+v, decoded %+v", a, b)
		}
	})
}

// TestStoreOfOldFormatReconciles: a store written before raw keys existed
// (memory/testdata/store-v1, written by the engine of commit 5e062cd: its
// message records hold the raw JSON inline and no raw key) still matches a
// resent history by chain hash, learns the raw keys once, persisted, and
// keeps every record's raw JSON.
func TestStoreOfOldFormatReconciles(t *testing.T) {
	embeddedOnly(t)
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/store-v1/megacontext.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "megacontext.db"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	conv := []Message{{Role: "system", Text: "You are a helpful assistant."}}
	users := []string{"My locker code is ZX-4471-QK.", "What is the capital of France?", "And of Italy?"}
	replies := []string{"Noted: ZX-4471-QK.", "Paris.", "Rome."}
	for i := range users {
		conv = append(conv, Message{Role: "user", Text: users[i]}, Message{Role: "assistant", Text: replies[i]})
	}
	k := Key{Tenant: "default", Context: "v1"}
	e := openEngine(t, dir)
	rawBefore := storedRaws(t, e, k, len(conv))
	dec := &countingDecoder{}
	next := append(conv, Message{Role: "user", Text: "Which code did I give you?"})
	w, err := e.Prepare(Request{Key: k, Messages: undecoded(next, plain), Decode: dec.decode, Budget: 3000, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	if w.NewMessages != 1 || w.LastSeq != int64(len(conv)) {
		t.Fatalf("old store: %d new messages, last seq %d; want 1 and %d", w.NewMessages, w.LastSeq, len(conv))
	}
	if dec.calls != len(next) {
		t.Fatalf("first resend decoded %d messages, want all %d (no raw keys stored yet)", dec.calls, len(next))
	}
	if got := storedRaws(t, e, k, len(conv)); fmt.Sprint(got) != fmt.Sprint(rawBefore) {
		t.Fatalf("raw JSON of old records changed when their raw keys were learned:\n%v\n%v", got, rawBefore)
	}
	// After a restart the learned keys are still there.
	e.Close()
	e = openEngine(t, dir)
	dec.calls = 0
	next = append(next, Message{Role: "assistant", Text: "ZX-4471-QK."}, Message{Role: "user", Text: "Thanks."})
	w, err = e.Prepare(Request{Key: k, Messages: undecoded(next, plain), Decode: dec.decode, Budget: 3000, PerMessage: 4, TailPercent: 40})
	if err != nil || w.NewMessages != 2 || dec.calls != 2 {
		t.Fatalf("after restart: new %d, %d decoded, err %v; want 2 and 2", w.NewMessages, dec.calls, err)
	}
	if !strings.Contains(w.Memory+fmt.Sprint(w.TailFrom), "ZX-4471-QK") && w.TailFrom > 1 {
		t.Fatalf("the old history is not in the window: %q", w.Memory)
	}
}

// storedRaws returns the raw JSON the store holds for messages 0..n-1.
func storedRaws(t *testing.T, e *Engine, k Key, n int) []string {
	t.Helper()
	var out []string
	for s := 0; s < n; s++ {
		v, ok, err := e.st.Get(msgKey(k, int64(s)))
		if err != nil || !ok {
			t.Fatalf("message %d: %v %v", s, ok, err)
		}
		var r struct {
			Raw json.RawMessage `json:"raw"`
		}
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(r.Raw))
	}
	return out
}

// TestIngestKeepsNoRequestBuffer: what a request stores does not alias
// the request's buffers (the proxy's body buffer is reused for the next
// request): overwriting them afterwards changes nothing in memory.
func TestIngestKeepsNoRequestBuffer(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "alias"}
	body := []byte(`{"role":"assistant","name":"Mira","content":"The harbor gate code is 5521."}`)
	str := unsafe.String(&body[0], len(body))
	at := func(s string) string { i := strings.Index(str, s); return str[i : i+len(s)] }
	m := Message{Role: at("assistant"), Name: at("Mira"), Text: at("The harbor gate code is 5521."), Raw: body}
	if _, err := e.Prepare(Request{Key: k, Messages: []Message{{Role: "user", Text: "hi"}, m, {Role: "user", Text: "gate?"}}, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	got, err := e.Messages(k, 0, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[1].Role != "assistant" || got[1].Name != "Mira" || got[1].Text != "The harbor gate code is 5521." {
		t.Fatalf("stored message changed with the request buffer: %+v", got[1])
	}
	w, err := e.Prepare(Request{Key: k, Messages: []Message{{Role: "user", Text: "hi"}, {Role: "assistant", Name: "Mira", Text: "The harbor gate code is 5521."}, {Role: "user", Text: "gate?"}}, Budget: 2000, PerMessage: 4, TailPercent: 40})
	if err != nil || w.NewMessages != 0 {
		t.Fatalf("resend after the buffer changed: %d new, %v", w.NewMessages, err)
	}
}

package memory

import (
	"errors"
	"testing"
)

// A stored response is found from its id alone within its tenant (never
// another's), remembers where its conversation ends, and continuing from
// there resends exactly the stored conversation, which memory recognizes
// as already stored.
func TestStoredResponseChains(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, dir)
	k := Key{Tenant: "acme", Context: "alice", Thread: "chat-1"}
	msgs := []Message{msg("system", "Be brief."), msg("user", "My locker code is ZX-4471-QK.")}
	w, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 2000, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	reply := msg("assistant", "Noted: ZX-4471-QK.")
	seq, err := e.StoreResponse(k, w.LastSeq, w.NextSeq, &reply, false, &ResponseRecord{ID: "resp_1", Object: []byte(`{"id":"resp_1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if seq != w.NextSeq {
		t.Fatalf("reply seq %d, want %d", seq, w.NextSeq)
	}
	// Storing the same reply again (the client's next turn raced ahead)
	// returns the stored one.
	if again, err := e.StoreResponse(k, w.LastSeq, w.NextSeq, &reply, false, &ResponseRecord{ID: "resp_1b", Object: []byte(`{}`)}); err != nil || again != seq {
		t.Fatalf("restore: seq %d err %v, want %d", again, err, seq)
	}

	e.Close()
	e = openEngine(t, dir) // records survive a restart
	got, rec, err := e.Response("acme", "resp_1")
	if err != nil {
		t.Fatal(err)
	}
	if got != k || rec.Seq != seq || string(rec.Object) != `{"id":"resp_1"}` {
		t.Fatalf("Response = %+v %+v", got, rec)
	}
	if _, _, err := e.Response("other", "resp_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another tenant found the response: %v", err)
	}
	conv, err := e.Conversation(got, rec.Seq)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]Message(nil), msgs...), reply)
	if len(conv) != len(want) {
		t.Fatalf("conversation has %d messages, want %d", len(conv), len(want))
	}
	for i := range want {
		if conv[i].Role != want[i].Role || conv[i].Text != want[i].Text {
			t.Fatalf("message %d = %+v, want %+v", i, conv[i], want[i])
		}
	}
	w2, err := e.Prepare(Request{Key: got, Messages: append(conv, msg("user", "What is my locker code?")), Budget: 2000, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	if w2.NewMessages != 1 {
		t.Fatalf("continuing stored %d new messages, want 1", w2.NewMessages)
	}

	if err := e.DeleteResponse("acme", "resp_1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Response("acme", "resp_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted response still found: %v", err)
	}
	if err := e.DeleteResponse("acme", "resp_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if st, err := e.Stats(got); err != nil || st.Messages != 4 {
		t.Fatalf("the conversation must stay in memory: %+v %v", st, err)
	}
	if _, err := e.StoreResponse(k, seq, seq+1, nil, false, &ResponseRecord{ID: "bad id!", Object: []byte(`{}`)}); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad id accepted: %v", err)
	}
}

// The hand-written record encoding reads back as encoding/json reads it.
func TestResponseRecordEncoding(t *testing.T) {
	for _, r := range []ResponseRecord{
		{ID: "resp_1", Seq: -1, Object: []byte(`{"a":[1,"x\u2028"]}`), Time: 42},
		{ID: "r-2_b", Thread: "chat \"7\" \u00e9\n", Seq: 12, Object: []byte(`{}`), Time: 1700000000000},
	} {
		var back ResponseRecord
		if err := unmarshal(r.encode(), &back); err != nil {
			t.Fatalf("%s: %v", r.encode(), err)
		}
		if back.ID != r.ID || back.Thread != r.Thread || back.Seq != r.Seq || back.Time != r.Time || string(back.Object) != string(r.Object) {
			t.Fatalf("round trip: %+v -> %s -> %+v", r, r.encode(), back)
		}
	}
}

package memory

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/store"
)

// TestVerifyHoldsUnderEveryOperation: whatever clients do (new chats,
// resends, edits, regenerations, replies, tags, a restart), the stored
// context verifies.
func TestVerifyHoldsUnderEveryOperation(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		opts := Options{Dir: t.TempDir(), Now: fixedClock(), BlockTokens: rapid.IntRange(8, 32).Draw(rt, "k"), Fanout: rapid.IntRange(2, 4).Draw(rt, "f")}
		e, err := testOpen(rt, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { e.Close() }()
		k := Key{Tenant: "t", Context: "v"}
		var conv []Message
		for step := range rapid.IntRange(1, 12).Draw(rt, "steps") {
			switch op := rapid.IntRange(0, 4).Draw(rt, "op"); {
			case op == 0 || len(conv) < 2: // a turn and its reply
				conv = append(conv, msg("user", fmt.Sprintf("turn %d: %s", step, filler(rand.New(rand.NewPCG(uint64(step), 3)), 15))))
			case op == 1: // an edit
				i := rapid.IntRange(0, len(conv)-1).Draw(rt, "edit")
				conv = append(conv[:i:i], msg("user", fmt.Sprintf("edited %d", step)))
			case op == 2: // a new chat
				conv = []Message{msg("user", fmt.Sprintf("new chat %d", step))}
			case op == 3: // a tag on a stored message
				if _, err := e.Tag(k, 0, nil, nil, nil); err != nil {
					rt.Fatal(err)
				}
				continue
			case op == 4: // a restart
				e.Close()
				if e, err = testOpen(rt, opts); err != nil {
					rt.Fatal(err)
				}
				continue
			}
			w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 2000, PerMessage: 4, TailPercent: 40})
			if err != nil {
				rt.Fatal(err)
			}
			reply := msg("assistant", fmt.Sprintf("reply %d", step))
			if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
				rt.Fatal(err)
			}
			conv = append(conv, reply)
			if err := e.Verify(k); err != nil {
				rt.Fatalf("step %d: %v", step, err)
			}
		}
	})
}

// TestVerifyFindsDamage: a message whose text no longer matches its chain
// hash, or a block changed under its gist, fails verification.
func TestVerifyFindsDamage(t *testing.T) {
	embeddedOnly(t)
	e := openEngine(t, t.TempDir())
	k := Key{Tenant: "t", Context: "damaged"}
	if _, err := e.Prepare(Request{Key: k, Messages: conversation(30, 4), Budget: 3000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(k); err != nil {
		t.Fatalf("sound context: %v", err)
	}
	for name, key := range map[string]string{"message": msgKey(k, 3), "block": nodeKey(k, 0, 2)} {
		v, _, err := e.st.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		field := `"text":"`
		if name == "block" {
			field = `"t":"`
		}
		damaged := strings.Replace(v, field, field+"X", 1)
		if err := e.st.Put(store.KV{Key: key, Value: damaged}); err != nil {
			t.Fatal(err)
		}
		if err := e.Verify(k); err == nil {
			t.Errorf("a changed %s verifies", name)
		}
		if err := e.st.Put(store.KV{Key: key, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

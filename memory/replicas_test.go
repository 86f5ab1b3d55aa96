package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/store"
)

// TestReplicaForgetsWhatAnotherErased: two engines on one shared store
// (replicas); the second has the context cached with a secret in it when
// the first erases the secret. The second's next window, and every block
// it holds, lack the secret: catching up with an erasure reads the context
// again rather than keeping the old text of the rewritten blocks.
func TestReplicaForgetsWhatAnotherErased(t *testing.T) {
	if !onPostgres {
		t.Skip("replicas share a PostgreSQL store (MEGACONTEXT_TEST_STORE=postgres)")
	}
	dir := t.TempDir()
	a, b := openWith(t, dir, nil, 4), openWith(t, dir, nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	const secret = "ZX-4471-QK"
	conv := conversation(20, 5)
	conv[3] = msg("user", strings.Repeat("My locker code is "+secret+", keep it safe. ", 6))
	if _, err := a.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	if w := window(t, b, k, "What is my locker code?", nil); !strings.Contains(w.Memory, secret) {
		t.Fatalf("setup: the second replica's window lacks the secret:\n%s", w.Memory)
	}
	if _, err := a.Erase(k, EraseRequest{Match: secret, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if w := window(t, b, k, "What is my locker code?", nil); strings.Contains(w.Memory, secret) {
		t.Fatalf("the second replica still shows the erased secret:\n%s", w.Memory)
	}
	c, err := b.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.mu.Unlock()
	for i := range c.tree.Len() {
		if n := c.tree.Node(0, i); strings.Contains(n.Text, secret) {
			t.Fatalf("block %d of the second replica's cached context holds the erased secret: %q", i, n.Text)
		}
	}
	for _, m := range c.msgs {
		if strings.Contains(m.Text, secret) {
			t.Fatalf("message %d of the second replica's cached context holds the erased secret", m.Seq)
		}
	}
}

// countingStore counts the calls a replica makes to its shared store.
type countingStore struct {
	nsStore
	// calls counts each method's calls; Get and Scan by record kind.
	calls map[string]int
}

func (s *countingStore) Put(kvs ...store.KV) error { s.calls["Put"]++; return s.nsStore.Put(kvs...) }

func (s *countingStore) Get(k string) (string, bool, error) {
	s.calls["Get "+k[:strings.IndexByte(k, ':')]]++
	return s.nsStore.Get(k)
}

func (s *countingStore) Scan(p string, fn func(k, v string) bool) error {
	s.calls["Scan "+p[:strings.IndexByte(p, ':')]]++
	return s.nsStore.Scan(p, fn)
}

func (s *countingStore) Version(ctx context.Context, t, n string) (store.Version, error) {
	s.calls["Version"]++
	return s.nsStore.Version(ctx, t, n)
}

func (s *countingStore) Since(ctx context.Context, t, n string, v store.Version) (*store.Changes, error) {
	s.calls["Since"]++
	return s.nsStore.Since(ctx, t, n, v)
}

func (s *countingStore) PutAt(ctx context.Context, t, n string, v store.Version, kvs ...store.KV) (store.Version, error) {
	s.calls["PutAt"]++
	return s.nsStore.PutAt(ctx, t, n, v, kvs...)
}

// TestTurnRoundTrips: a chat turn costs a replica three calls to the
// shared store, each one round trip: the check of its cached context
// (which brings back what another replica wrote since, when it did), the
// user's message, the reply. Whether the same replica served the last turn
// or another one did. (Rewriting the reply when the client resends it, to
// keep its raw key and exact counts, used to read it back first, twice,
// when it held the upstream's JSON.)
func TestTurnRoundTrips(t *testing.T) {
	if !onPostgres {
		t.Skip("replicas share a PostgreSQL store (MEGACONTEXT_TEST_STORE=postgres)")
	}
	dsn, ns := testNamespace(t, "")
	open := func() (*Engine, *countingStore) {
		ps, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, AutoMigrate: true})
		if err != nil {
			t.Fatal(err)
		}
		cs := &countingStore{nsStore{ps, ns}, map[string]int{}}
		e := mustOpen(t, Options{Store: cs, Now: fixedClock()})
		return e, cs
	}
	a, ac := open()
	b, bc := open()
	k := Key{Tenant: "t", Context: "c"}
	r := rand.New(rand.NewPCG(9, 9))
	conv := []Message{msg("system", "You are helpful.")}
	turn := func(e *Engine) {
		conv = append(conv, msg("user", filler(r, 60)))
		w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4096 - 512, PerMessage: 5, TailPercent: 40})
		if err != nil {
			t.Fatal(err)
		}
		// The reply as the upstream sent it, and as the client resends
		// it: other bytes (a raw key to learn), the same message.
		text := filler(r, 40)
		reply := msg("assistant", text)
		reply.Raw = json.RawMessage(fmt.Sprintf(`{"role":"assistant","content":%q,"refusal":null}`, text))
		if _, err := e.StoreResponse(k, w.LastSeq, w.NextSeq, &reply, false, nil); err != nil {
			t.Fatal(err)
		}
		resent := msg("assistant", text)
		resent.Raw = json.RawMessage(fmt.Sprintf(`{"role":"assistant","content":%q}`, text))
		conv = append(conv, resent)
	}
	for _, tc := range []struct {
		name    string
		engines []*Engine
	}{{"one replica", []*Engine{a}}, {"two replicas in turn", []*Engine{a, b}}} {
		for range 4 {
			turn(tc.engines[0]) // both have the context loaded
			turn(tc.engines[len(tc.engines)-1])
		}
		clear(ac.calls)
		clear(bc.calls)
		const turns = 12
		for i := range turns {
			turn(tc.engines[i%len(tc.engines)])
		}
		calls := map[string]int{}
		for _, c := range []*countingStore{ac, bc} {
			for k, n := range c.calls {
				calls[k] += n
			}
		}
		// Focus telemetry is written in the background (every 2 s), off
		// the request path.
		delete(calls, "Put")
		if want := map[string]int{"Since": turns, "PutAt": 2 * turns}; !maps.Equal(calls, want) {
			t.Errorf("%s: %d turns called the store %v, want %v", tc.name, turns, calls, want)
		}
	}
}

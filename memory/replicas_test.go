package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/store"
)

// twoReplicas opens two engines on one PostgreSQL store (replicas), and
// names the context the test uses; it skips on the embedded store.
func twoReplicas(t *testing.T) (a, b *Engine, k Key) {
	t.Helper()
	if !onPostgres {
		t.Skip("replicas share a PostgreSQL store (MEGACONTEXT_TEST_STORE=postgres)")
	}
	dir := t.TempDir()
	return openWith(t, dir, nil, 4), openWith(t, dir, nil, 4), Key{Tenant: "t", Context: "c"}
}

// lockerSecret is the code tellSecret tells.
const lockerSecret = "ZX-4471-QK"

// tellSecret stores, through e, a 20-turn conversation whose fourth
// message tells lockerSecret, six times over so that it spans blocks:
// the setup of the tests where another replica erases it.
func tellSecret(t *testing.T, e *Engine, k Key) {
	t.Helper()
	conv := conversation(20, 5)
	conv[3] = msg("user", strings.Repeat("My locker code is "+lockerSecret+", keep it safe. ", 6))
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaForgetsWhatAnotherErased: two engines on one shared store
// (replicas); the second has the context cached with a secret in it when
// the first erases the secret. The second's next window, and every block
// it holds, lack the secret: catching up with an erasure reads the context
// again rather than keeping the old text of the rewritten blocks.
func TestReplicaForgetsWhatAnotherErased(t *testing.T) {
	a, b, k := twoReplicas(t)
	const secret = lockerSecret
	tellSecret(t, a, k)
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

// TestTurnRoundTrips: a chat turn costs a replica two calls to the shared
// store, each one round trip, when it served the context's last turn: the
// user's message, whose guard checks the cached context, and the reply.
// When replicas take turns, each turn's replica finds its cache out of
// date: once it has lost a race for the context it checks the cache first
// (one round trip that brings back what another replica wrote), so a turn
// costs three. (Rewriting the reply when the client resends it, to keep
// its raw key and exact counts, used to read it back first, twice, when it
// held the upstream's JSON; the check used to come first on every turn.)
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
		want    map[string]int
	}{
		{"one replica", []*Engine{a}, map[string]int{"PutAt": 2 * 12}},
		{"two replicas in turn", []*Engine{a, b}, map[string]int{"Since": 12, "PutAt": 2 * 12}},
	} {
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
		if !maps.Equal(calls, tc.want) {
			t.Errorf("%s: %d turns called the store %v, want %v", tc.name, turns, calls, tc.want)
		}
	}
}

// TestUncheckedCacheResentListSeesOtherReplicas: a replica's turn checks
// its cached context through its write's guard; a turn that writes nothing
// (the client resent a list already stored) has no guard, so it checks
// first. Replica a has the context cached when replica b stores a fact; a
// then gets a list it stored before, whole: its window holds b's fact.
func TestUncheckedCacheResentListSeesOtherReplicas(t *testing.T) {
	a, b, k := twoReplicas(t)
	const fact = "QX-9183-LM"
	first := []Message{msg("user", "What is the code of my bike lock?")}
	req := Request{Key: k, Messages: first, Budget: 3000, PerMessage: 4, TailPercent: 30}
	if _, err := a.Prepare(req); err != nil {
		t.Fatal(err)
	}
	told := []Message{msg("user", strings.Repeat("The code of my bike lock is "+fact+". ", 4)), msg("assistant", "Noted.")}
	if _, err := b.Prepare(Request{Key: k, Messages: told, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	w, err := a.Prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	if w.NewMessages != 0 {
		t.Fatalf("the resent list stored %d new messages, want 0", w.NewMessages)
	}
	if !strings.Contains(w.Memory, fact) {
		t.Fatalf("replica a's window lacks what replica b stored:\n%s", w.Memory)
	}
}

// TestFocusCountedOnceAcrossReplicas: three replicas serve windows of one
// context at once, each storing its focus telemetry every few windows;
// the stored counts are the sum of what the three counted: every window
// counted once, none of a replica's counts overwritten by another's.
// (Telemetry stored whole, each replica writing the counts it held, kept
// only the last writer's.)
func TestFocusCountedOnceAcrossReplicas(t *testing.T) {
	if !onPostgres {
		t.Skip("replicas share a PostgreSQL store (MEGACONTEXT_TEST_STORE=postgres)")
	}
	dir := t.TempDir()
	open := func() *Engine {
		e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Fanout: 4, KeepWindows: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	replicas := []*Engine{open(), open(), open()}
	k := Key{Tenant: "t", Context: "tel"}
	if _, err := replicas[0].Import(k, conversation(60, 3), replicas[0].opts.Now()); err != nil {
		t.Fatal(err)
	}
	questions := []string{"What is my locker combination?", "What is my cat named?", "Where did I go on holiday?", "What do I drink in the morning?"}
	var mu sync.Mutex
	want, windows := map[nodeKey2]int{}, 0
	serve := func(i, n int) error {
		e := replicas[i]
		q := fmt.Sprintf("%s (asked by replica %d, turn %d)", questions[(i+n)%len(questions)], i, n)
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 1500, PerMessage: 4, TailPercent: 40})
		if err != nil {
			return err
		}
		// What the window shows: it counts once in the residency of each.
		shown := map[nodeKey2]bool{}
		for _, en := range windowEntries(w.why.res) {
			if en.Detail != focus.Elided {
				shown[nodeKey2{en.Node.Level, en.Node.Index}] = true
			}
		}
		mu.Lock()
		for n := range shown {
			want[n]++
		}
		windows++
		mu.Unlock()
		e.KeepWindow(w, WindowMeta{Budget: 1500, Tokens: w.Tokens, Status: 200})
		return nil
	}
	// Turns in turn, each replica storing its counts after each of its
	// windows; then all three at once, storing now and then.
	const rounds, turns = 4, 8
	for n := range rounds {
		for i, e := range replicas {
			if err := serve(i, n); err != nil {
				t.Fatal(err)
			}
			e.SettleFocus()
		}
	}
	errs := make(chan error, len(replicas))
	for i, e := range replicas {
		go func() {
			for n := range turns {
				if err := serve(i, rounds+n); err != nil {
					errs <- err
					return
				}
				if n%3 == 2 {
					e.SettleFocus() // interleaved with the others' stores
				}
			}
			e.SettleFocus()
			errs <- nil
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if windows != len(replicas)*(rounds+turns) {
		t.Fatalf("%d windows served, want %d", windows, len(replicas)*(rounds+turns))
	}
	got := map[nodeKey2]int{}
	reader := open()
	c, err := reader.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	c.telMu.Lock()
	for n, f := range c.focus {
		if f.Resident > 0 {
			got[n] = f.Resident
		}
	}
	c.telMu.Unlock()
	c.mu.Unlock()
	if len(want) == 0 || !maps.Equal(got, want) {
		sum := func(m map[nodeKey2]int) (s int) {
			for _, v := range m {
				s += v
			}
			return s
		}
		t.Fatalf("stored residency of %d nodes (%d windows' worth), want %d nodes (%d): got %v want %v",
			len(got), sum(got), len(want), sum(want), got, want)
	}
}

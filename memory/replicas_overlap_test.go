package memory

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/store"
)

// gatedStore holds a guarded write, once armed, until the engine has read
// its clock as many times since the test armed it as a whole turn of the
// same shape does (a calibration turn counts them, after it returned): the
// turn's staging reads it before the write, the window's assembly after,
// so the write is released only by an assembly that runs while it is in
// flight. When the write's time limit (Options.StoreTimeout) runs out
// first, it reports that nothing overlapped it (the engine waited for the
// write before assembling) and the write fails. (Counts, not signals: the
// assembly may read the clock before the write's goroutine reaches the
// store.)
type gatedStore struct {
	nsStore
	reads      atomic.Int64 // clock reads
	armed      atomic.Bool
	armAt      int64
	turn       int64 // clock reads of a whole turn
	overlapped chan bool
}

func (s *gatedStore) PutAt(ctx context.Context, t, n string, v store.Version, kvs ...store.KV) (store.Version, error) {
	if s.armed.CompareAndSwap(true, false) {
		ok := false
		for !ok && ctx.Err() == nil {
			ok = s.reads.Load() >= s.armAt+s.turn
			if !ok {
				runtime.Gosched() // the assembly runs on the other goroutine
			}
		}
		s.overlapped <- ok
	}
	return s.nsStore.PutAt(ctx, t, n, v, kvs...)
}

// TestTurnWriteOverlapsAssembly: with a shared store, a turn's message is
// written (one round trip) while the window is assembled from the context
// as staged, not before: the write is held until the assembly has begun,
// and the turn still completes, its window holding the new message, its
// message stored. (Before, the write had to return before the assembly
// began, so that its round trip added to the turn's whole.)
func TestTurnWriteOverlapsAssembly(t *testing.T) {
	if !onPostgres {
		t.Skip("the overlap is a shared store's (MEGACONTEXT_TEST_STORE=postgres)")
	}
	dsn, ns := testNamespace(t, "")
	ps, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{nsStore: nsStore{ps, ns}, overlapped: make(chan bool, 1)}
	clock := fixedClock()
	now := func() time.Time {
		gs.reads.Add(1)
		return clock()
	}
	e := mustOpen(t, Options{Store: gs, Now: now})
	k := Key{Tenant: "t", Context: "c"}
	conv := conversation(30, 3)
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 1500, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	// Calibration: a turn of the same shape, ungated, counts its clock
	// reads.
	conv = append(conv, msg("assistant", "Noted."), msg("user", "My bike is the green one by the door."))
	gs.armAt = gs.reads.Load()
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 1500, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	gs.turn = gs.reads.Load() - gs.armAt
	const fact = "The spare key hides under the blue flowerpot."
	conv = append(conv, msg("assistant", "Noted."), msg("user", fact))
	gs.armAt = gs.reads.Load()
	gs.armed.Store(true)
	w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 1500, PerMessage: 4, TailPercent: 30})
	if !<-gs.overlapped {
		t.Fatalf("the window's assembly waited for the turn's write (which waited for the assembly until its time ran out; a turn reads the clock %d times, %d since armed)", gs.turn, gs.reads.Load()-gs.armAt)
	}
	if err != nil {
		t.Fatal(err)
	}
	if w.NewMessages != 2 || w.LastSeq != w.NextSeq-1 {
		t.Fatalf("the turn stored %d new messages (last %d, next %d), want 2", w.NewMessages, w.LastSeq, w.NextSeq)
	}
	// Stored: a second replica reads it.
	b := mustOpen(t, Options{Store: nsStore{ps, ns}, Now: fixedClock()})
	if w := window(t, b, k, "Where is the spare key?", nil); !strings.Contains(w.Memory, "blue flowerpot") {
		t.Fatalf("another replica's window lacks the stored message:\n%s", w.Memory)
	}
}

// TestLiveTurnNeverShowsErasedText: replica a has a context cached with a
// secret in it when replica b erases the secret; a's next live turn (its
// write in flight while its window is assembled from the stale cache) is
// refused by the write's guard, and the window sent is assembled again
// from the stored context: it lacks the secret.
func TestLiveTurnNeverShowsErasedText(t *testing.T) {
	a, b, k := twoReplicas(t)
	const secret = lockerSecret
	tellSecret(t, a, k)
	ask := func(q string) *Window {
		t.Helper()
		w, err := a.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 3000, PerMessage: 4, TailPercent: 30})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := ask("What is my locker code?"); !strings.Contains(w.Memory, secret) {
		t.Fatalf("setup: the window lacks the secret:\n%s", w.Memory)
	}
	if _, err := b.Erase(k, EraseRequest{Match: secret, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// A new message: the turn writes, and its write's guard is the check.
	conflicts := a.StoreCounters().Conflicts
	if w := ask("Tell me my locker code again."); strings.Contains(w.Memory, secret) {
		t.Fatalf("a live turn's window shows text another replica erased:\n%s", w.Memory)
	}
	if got := a.StoreCounters().Conflicts; got == conflicts {
		t.Fatalf("the stale cache's write was not refused")
	}
}

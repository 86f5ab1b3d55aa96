package memory

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/store"
)

// TestTornWriteLeavesContextLoadable stores a conversation turn by turn,
// makes one more write of a kind (a turn, a reply, a retention prune, a fork),
// then tears that write in the embedded store's file as a kill -9 can (any
// subset of a transaction's records, in any order, the last one possibly
// cut; store.TearWrites) many times with a fixed seed. Every time, the
// reopened context must load, pass Verify, list exactly the messages it
// had before the write or exactly those after (never a part of the
// write), assemble a window and store a new turn.
func TestTornWriteLeavesContextLoadable(t *testing.T) {
	if onPostgres {
		t.Skip("tears the embedded store's file; PostgreSQL writes are transactions")
	}
	r := rand.New(rand.NewPCG(10, 10))
	k := Key{Tenant: "t", Context: "c"}
	at := time.Date(2024, 11, 1, 9, 0, 0, 0, time.UTC) // older than the prune rules day
	ops := []string{"turn", "reply", "prune", "fork"}
	for round := 0; round < 2*len(ops); round++ {
		op := ops[round%len(ops)]
		dir := t.TempDir()
		open := func() *Engine {
			t.Helper()
			e, err := Open(Options{Dir: dir, Now: fixedClock(), BlockTokens: 16, Fanout: 4, KeepWindows: -1,
				Retention: []RetentionRule{{Name: "old", OlderThanDays: 1}}})
			if err != nil {
				t.Fatalf("%s round %d: open: %v", op, round, err)
			}
			return e
		}
		list := func(e *Engine, k Key) []MessageInfo {
			t.Helper()
			ms, err := e.Messages(k, 0, 1000, nil)
			if err != nil {
				t.Fatalf("%s round %d: messages of %s: %v", op, round, k.Context, err)
			}
			return ms
		}
		conv := conversation(12, uint64(round))
		e := open()
		for i := 3; i <= 21; i += 2 {
			if _, err := e.Import(k, conv[:i], at); err != nil {
				t.Fatal(err)
			}
		}
		before := list(e, k)
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		size, err := os.Stat(filepath.Join(dir, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		e = open()
		switch op {
		case "turn":
			_, err = e.Import(k, conv[:23], at)
		case "reply":
			last := int64(len(before) - 1)
			_, err = e.StoreResponse(k, last, last+1, &Message{Role: "assistant", Text: filler(rand.New(rand.NewPCG(1, 2)), 150)}, false, nil)
		case "prune":
			var plan PrunePlan
			if plan, err = e.Prune(k, "old", "test"); err == nil && plan.Messages == 0 {
				err = fmt.Errorf("pruned nothing")
			}
		case "fork":
			_, err = e.Fork(k, "c2", -1, "test")
		}
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		after := list(e, k)
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		file, err := os.ReadFile(filepath.Join(dir, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		cmds, err := store.ReadCommands(dir, size.Size())
		if err != nil {
			t.Fatal(err)
		}
		for trial := 0; trial < 12; trial++ {
			torn := append(bytes.Clone(file[:size.Size()]), store.TearWrites(r, cmds)...)
			if err := os.WriteFile(filepath.Join(dir, store.FileName), torn, 0o644); err != nil {
				t.Fatal(err)
			}
			where := fmt.Sprintf("%s round %d trial %d", op, round, trial)
			e := open()
			if err := e.Verify(k); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			got := list(e, k)
			if !reflect.DeepEqual(got, before) && !reflect.DeepEqual(got, after) {
				t.Fatalf("%s: %d messages, neither the %d before the write nor the %d after", where, len(got), len(before), len(after))
			}
			if op == "fork" {
				if err := e.Verify(Key{Tenant: "t", Context: "c2"}); err != nil && err != ErrNotFound {
					t.Fatalf("%s: the fork: %v", where, err)
				}
			}
			w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 500, PerMessage: 4, TailPercent: 40})
			if err != nil {
				t.Fatalf("%s: a new turn: %v", where, err)
			}
			if w.Tokens == 0 || w.LastSeq != int64(len(conv)-1) && w.LastSeq < int64(len(after)) {
				t.Fatalf("%s: window of %d tokens up to message %d", where, w.Tokens, w.LastSeq)
			}
			if err := e.Verify(k); err != nil {
				t.Fatalf("%s: after a new turn: %v", where, err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

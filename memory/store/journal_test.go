package store

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/buntdb"
)

func TestJournalRoundTrip(t *testing.T) {
	ops := []journalOp{{Op: opSet, Key: "a", Value: "\x00\xff"}, {Op: opDel, Key: "b"}, {Op: opSet, Key: "", Value: ""},
		{Op: opSetDone, Key: "c", Value: "old", Done: digest("new")}, {Op: opDelDone, Key: "d", Done: digest("\x00")}}
	got, err := decodeJournal(encodeJournal(ops))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(ops) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	if _, err := decodeJournal("s\x05ab"); err == nil {
		t.Fatal("a cut journal decoded")
	}
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add(encodeJournal([]journalOp{{Op: opSet, Key: "k", Value: "v"}, {Op: opDel, Key: "d"}}))
	f.Add(encodeJournal([]journalOp{{Op: opSetDone, Key: "k", Value: "v", Done: digest("w")}, {Op: opDelDone, Key: "d", Done: digest("")}}))
	f.Fuzz(func(t *testing.T, s string) {
		ops, err := decodeJournal(s)
		if err != nil {
			return
		}
		again, err := decodeJournal(encodeJournal(ops))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(ops) {
			t.Fatalf("decoded %q as %v, which does not round trip: %v, %v", s, ops, again, err)
		}
	})
}

// killedAfter returns the store in dir as a kill -9 right after the writes
// of fn would leave it: fn runs on an open store, the file is copied
// before Close (which deletes the live journal), put back, and reopened.
func killedAfter(t *testing.T, dir string, fn func(s *Store)) *Store {
	t.Helper()
	s, err := Open(dir, SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	fn(s)
	file, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), file, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mustPut writes kvs or fails the test.
func mustPut(t *testing.T, s *Store, kvs ...KV) {
	t.Helper()
	if err := s.Put(kvs...); err != nil {
		t.Fatal(err)
	}
}

// TestReturnedWriteSurvivesItsJournal: the journal of a write that
// returned stays in the file until the next write; a kill then must not
// undo the write (the journal's digests say it is whole), nor a write of
// one record made after it.
func TestReturnedWriteSurvivesItsJournal(t *testing.T) {
	want := map[string]string{"a": "a2", "b": "b2", "c": "c1", "d": "d2"}
	s := killedAfter(t, t.TempDir(), func(s *Store) {
		mustPut(t, s, KV{"a", "a1"}, KV{"b", "b1"}, KV{"c", "c1"})
		mustPut(t, s, KV{"a", "a2"}, KV{"b", "b2"}, KV{"b", "b2"}, KV{"d", "d1"})
		if live := s.db.View(func(tx *buntdb.Tx) error { _, err := tx.Get(journalKey); return err }); live != nil {
			t.Fatalf("no live journal after a write (%v): the test would prove nothing", live)
		}
	})
	if got := contents(t, s); !maps.Equal(got, map[string]string{"a": "a2", "b": "b2", "c": "c1", "d": "d1"}) {
		t.Fatalf("after a returned write: %v", got)
	}
	// The second write's journal says to undo d1: the write of one record
	// after it must delete that journal first, or d2 is lost.
	s = killedAfter(t, t.TempDir(), func(s *Store) {
		mustPut(t, s, KV{"a", "a1"}, KV{"b", "b1"}, KV{"c", "c1"})
		mustPut(t, s, KV{"a", "a2"}, KV{"b", "b2"}, KV{"d", "d1"})
		mustPut(t, s, KV{"d", "d2"})
	})
	if got := contents(t, s); !maps.Equal(got, want) {
		t.Fatalf("after a write of one record: %v, want %v", got, want)
	}
}

// TestJournalOutlivesItsWrite: a write is two transactions, not three
// (with SyncAlways, two fsyncs): no write deletes its own journal; the
// next one overwrites it, and Close deletes the last.
func TestJournalOutlivesItsWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, SyncAlways)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		mustPut(t, s, KV{"x", fmt.Sprint(i)}, KV{"y", fmt.Sprint(i)})
	}
	count := func() (sets, dels int) {
		cmds, err := ReadCommands(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			if c.Journal {
				if bytes.Contains(c.Bytes, []byte("\r\ndel\r\n")) {
					dels++
				} else {
					sets++
				}
			}
		}
		return sets, dels
	}
	if sets, dels := count(); sets != 5 || dels != 0 {
		t.Fatalf("after 5 writes the file holds %d journal sets and %d deletions, want 5 and 0", sets, dels)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sets, dels := count(); sets != 5 || dels != 1 {
		t.Fatalf("after Close the file holds %d journal sets and %d deletions, want 5 and 1", sets, dels)
	}
}

// TestJournalWithoutDigestsIsUndone: a journal of the release before the
// digests was deleted after its write, so one found at Open is a write cut
// short, undone even where the records look whole.
func TestJournalWithoutDigestsIsUndone(t *testing.T) {
	dir := t.TempDir()
	s := killedAfter(t, dir, func(s *Store) {
		mustPut(t, s, KV{"a", "a2"}, KV{"b", "b2"})
		err := s.db.Update(func(tx *buntdb.Tx) error {
			_, _, err := tx.Set(journalKey, encodeJournal([]journalOp{{Op: opSet, Key: "a", Value: "a1"}, {Op: opDel, Key: "b"}}), nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if got := contents(t, s); !maps.Equal(got, map[string]string{"a": "a1"}) {
		t.Fatalf("old journal not undone: %v", got)
	}
}

// BenchmarkPutAlways measures a write of 8 records of 1 KiB with an fsync
// per transaction (SyncAlways): the cost of a chat turn's write there.
func BenchmarkPutAlways(b *testing.B) {
	s, err := Open(b.TempDir(), SyncAlways)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	val := strings.Repeat("v", 1024)
	kvs := make([]KV, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range kvs {
			kvs[j] = KV{Key("m", "t", fmt.Sprint(i*8+j)), val}
		}
		if err := s.Put(kvs...); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompactLeavesNoJournal: the live journal holds the values the last
// write replaced (an erased text); Compact must leave none of them.
func TestCompactLeavesNoJournal(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, KV{"a", "the secret"}, KV{"b", "x"})
	mustPut(t, s, KV{"a", "[erased]"}, KV{"b", "y"})
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(file, []byte("the secret")); n != 0 {
		t.Fatalf("the file holds the replaced value %d times after Compact", n)
	}
}

package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// contents returns every record of s.
func contents(t *testing.T, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := s.Scan("", func(k, v string) bool { m[k] = v; return true }); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTornWriteIsWholeOrAbsent tears the last write of a store (a Put of
// new and rewritten records, or a Delete) the way a kill -9 does, many
// times with a fixed seed, and requires the reopened store to hold exactly
// what it held before that write or exactly what it held after: never a
// part of it.
func TestTornWriteIsWholeOrAbsent(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 1))
	for round := 0; round < 16; round++ {
		dir := t.TempDir()
		s, err := Open(dir, SyncSecond)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			var kvs []KV
			for j := 0; j < 1+r.IntN(20); j++ {
				kvs = append(kvs, KV{Key("m", "t", fmt.Sprintf("%03d", r.IntN(60))), fmt.Sprintf("v%d-%d\x00\xff", i, j)})
			}
			if err := s.Put(kvs...); err != nil {
				t.Fatal(err)
			}
		}
		before := contents(t, s)
		size := s.FileSize()
		if round%4 == 3 {
			if _, err := s.Delete([]string{Key("m", "t", "001")}, []string{Prefix("m", "t") + "02"}); err != nil {
				t.Fatal(err)
			}
		} else {
			var kvs []KV
			for j := 0; j < 2+r.IntN(30); j++ {
				kvs = append(kvs, KV{Key("m", "t", fmt.Sprintf("%03d", r.IntN(80))), fmt.Sprintf("last-%d", j)})
			}
			if err := s.Put(kvs...); err != nil {
				t.Fatal(err)
			}
		}
		after := contents(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		file, err := os.ReadFile(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		cmds, err := ReadCommands(dir, size)
		if err != nil {
			t.Fatal(err)
		}
		for trial := 0; trial < 20; trial++ {
			torn := append(bytes.Clone(file[:size]), TearWrites(r, cmds)...)
			if err := os.WriteFile(filepath.Join(dir, FileName), torn, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, SyncSecond)
			if err != nil {
				t.Fatalf("round %d trial %d: reopen: %v", round, trial, err)
			}
			got := contents(t, s)
			if !maps.Equal(got, before) && !maps.Equal(got, after) {
				t.Fatalf("round %d trial %d: a torn write left part of itself: %d records, %d before it, %d after", round, trial, len(got), len(before), len(after))
			}
			// The store takes writes again, and they last.
			if err := s.Put(KV{"x:1", "a"}, KV{"x:2", "b"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, SyncSecond)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok, _ := s.Get("x:2"); !ok || v != "b" {
				t.Fatalf("round %d trial %d: a write after recovery was lost", round, trial)
			}
			s.Close()
		}
	}
}

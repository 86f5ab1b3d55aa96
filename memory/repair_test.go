package memory

import (
	"bytes"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/store"
)

// TestTornFileOfOldCodeIsRepairedOnLoad writes, with the store's own key
// schema, the records an older version could leave after a kill -9 cut one
// turn's write (before the journal made every write whole): the turn's
// records but some left out. Verify reports such a context as stored; it
// must load, tell why in a
// warning naming it, keep every message whose record is stored, pass
// Verify, assemble a window and take a new turn; and load again without a
// second repair.
func TestTornFileOfOldCodeIsRepairedOnLoad(t *testing.T) {
	k := Key{Tenant: "t", Context: "torn-ctx"}
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	conv := conversation(12, 5)
	isNode := func(key string) bool { return strings.HasPrefix(key, recordPrefix(kindNode, k)) }
	isMsg := func(key string) bool { return strings.HasPrefix(key, recordPrefix(kindMessage, k)) }
	level := func(key string) int { l, _, _ := nodeOfKey(key); return l }
	cases := []struct {
		name string
		// omit picks, among the records the turn wrote (new or changed, in
		// key order), those the tear left out.
		omit func(written []string) []string
		// garble makes an older message's record unreadable too (a
		// damaged file): its blocks still hold its text.
		garble bool
	}{
		{"node gap: block 104 missing, 105 present", func(w []string) []string {
			for _, key := range w {
				if isNode(key) && level(key) == 0 {
					return []string{key} // the turn's first block
				}
			}
			return nil
		}, false},
		{"messages without their blocks", func(w []string) []string {
			var out []string
			for _, key := range w {
				if isNode(key) {
					out = append(out, key)
				}
			}
			return out
		}, false},
		{"blocks without their message", func(w []string) []string {
			var last string
			for _, key := range w {
				if isMsg(key) {
					last = key
				}
			}
			return []string{last, headerKey(k)}
		}, false},
		{"gists missing above full blocks", func(w []string) []string {
			var out []string
			for _, key := range w {
				if isNode(key) && level(key) > 0 {
					out = append(out, key)
				}
			}
			return out
		}, false},
		{"header not written", func(w []string) []string { return []string{headerKey(k)} }, false},
		{"node gap and an unreadable message", func(w []string) []string {
			for _, key := range w {
				if isNode(key) && level(key) == 0 {
					return []string{key}
				}
			}
			return nil
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs bytes.Buffer
			open := func() *Engine {
				t.Helper()
				e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: 16, Fanout: 4, KeepWindows: -1,
					Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			e := open()
			for i := 3; i <= 21; i += 2 {
				if _, err := e.Import(k, conv[:i], at); err != nil {
					t.Fatal(err)
				}
			}
			old := contextRecords(t, e, k)
			if _, err := e.Import(k, conv[:23], at); err != nil {
				t.Fatal(err)
			}
			full := contextRecords(t, e, k)
			keys := slices.Sorted(maps.Keys(full))
			var written []string
			for _, key := range keys {
				if v, ok := old[key]; !ok || v != full[key] {
					written = append(written, key)
				}
			}
			omit := tc.omit(written)
			if len(omit) == 0 || omit[0] == "" {
				t.Fatalf("the turn wrote nothing to leave out: %v", written)
			}
			// The torn file: every record the turn wrote but those left
			// out, which keep what they were before it (or are absent).
			// Messages are only ever left out whole (a message record
			// is new in the turn that writes it): those are deleted, and
			// the tree and header written as torn.
			left := map[string]bool{}
			for _, key := range omit {
				left[key] = true
			}
			var kvs []store.KV
			var gone []string
			stored := 0 // message records the torn file holds
			for _, key := range keys {
				kv := store.KV{Key: key, Value: full[key]}
				switch v, was := old[key]; {
				case isMsg(key) && left[key]:
					gone = append(gone, key)
				case isMsg(key):
					stored++
				case left[key] && was:
					kvs = append(kvs, store.KV{Key: key, Value: v})
				case !left[key]:
					kvs = append(kvs, kv)
				}
			}
			if (len(gone) > 0 || tc.garble) && onPostgres {
				t.Skip("PostgreSQL deletes a message record only with its context, keeps records in typed columns (and never tears a write)")
			}
			if tc.garble {
				kvs = append(kvs, store.KV{Key: msgKey(k, 5), Value: "\x00garbled"})
			}
			if _, err := e.st.Delete(gone, []string{recordPrefix(kindNode, k)}); err != nil {
				t.Fatal(err)
			}
			if err := e.st.Put(kvs...); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}

			e = open()
			defer e.Close()
			if err := e.Verify(k); err == nil {
				t.Fatal("the torn context verifies as stored")
			}
			// Requests that load the torn context at once all get it.
			lists := make([][]MessageInfo, 4)
			errs := make([]error, len(lists))
			var wg sync.WaitGroup
			for i := range lists {
				wg.Go(func() { lists[i], errs[i] = e.Messages(k, 0, 1000, nil) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("the torn context does not load (request %d): %v", i, err)
				}
			}
			got := lists[0]
			if len(got) != stored {
				t.Fatalf("%d messages listed, the file stores %d", len(got), stored)
			}
			for i, m := range got {
				if m.Text != conv[i].Text {
					t.Fatalf("message %d reads %q, was sent as %q", i, m.Text, conv[i].Text)
				}
			}
			if err := e.Verify(k); err != nil {
				t.Fatalf("repaired context: %v", err)
			}
			if !strings.Contains(logs.String(), "context="+k.Context) || !strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("no warning naming the context:\n%s", logs.String())
			}
			w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 500, PerMessage: 4, TailPercent: 40})
			if err != nil {
				t.Fatalf("a new turn on the repaired context: %v", err)
			}
			if w.Tokens == 0 || w.LastSeq != int64(len(conv)-1) {
				t.Fatalf("window of %d tokens up to message %d", w.Tokens, w.LastSeq)
			}
			if err := e.Verify(k); err != nil {
				t.Fatalf("after a new turn: %v", err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			logs.Reset()
			e = open()
			if err := e.Verify(k); err != nil {
				t.Fatal(err)
			}
			if got, err := e.Messages(k, 0, 1000, nil); err != nil || int64(len(got)) != w.LastSeq+1 {
				t.Fatalf("reopened: %d messages (%v), want %d", len(got), err, w.LastSeq+1)
			}
			if logs.Len() > 0 {
				t.Fatalf("repaired again on the next load:\n%s", logs.String())
			}
		})
	}
}

// contextRecords reads k's header, message and tree node records.
func contextRecords(t *testing.T, e *Engine, k Key) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range []string{recordPrefix(kindMessage, k), recordPrefix(kindNode, k)} {
		if err := e.st.Scan(p, func(key, v string) bool { out[key] = v; return true }); err != nil {
			t.Fatal(err)
		}
	}
	v, ok, err := e.st.Get(headerKey(k))
	if err != nil || !ok {
		t.Fatalf("header: %v %v", ok, err)
	}
	out[headerKey(k)] = v
	return out
}

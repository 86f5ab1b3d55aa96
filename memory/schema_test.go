package memory

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/store"
)

// Delete must leave no record of the context behind, of any kind (a context
// re-created with the same id once loaded the old one's vectors), and the
// neighbouring context whose id extends it keeps everything.
func TestDeleteRemovesEveryRecordKind(t *testing.T) {
	e, err := testOpen(t, Options{Dir: t.TempDir(), Now: fixedClock(), Embedder: &conceptEmbedder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t", Context: "c"}
	other := Key{Tenant: "t", Context: "c2"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, key := range []Key{k, other} {
		w, err := e.Prepare(Request{Key: key, Messages: conversation(40, 3), Budget: 3000, PerMessage: 4, TailPercent: 30})
		if err != nil {
			t.Fatal(err)
		}
		e.KeepWindow(w, WindowMeta{Budget: 3000, Status: 200}) // focus telemetry
		reply := msg("assistant", "Noted.")
		if _, err := e.StoreResponse(key, w.LastSeq, w.NextSeq, &reply, false, &ResponseRecord{ID: "resp_" + key.Context, Object: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitEmbedded(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	e.SettleFocus()
	if _, err := e.AddPin(k, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	// A provenance record and the store's snapshot record (an export).
	kv, err := e.provenanceKV(k, ProvenanceRecord{Kind: provForget, Time: 1, FirstBlock: -1, LastBlock: -1})
	if err != nil || e.st.Put(kv) != nil {
		t.Fatal("provenance record", err)
	}
	if _, err := e.ExportBundle(k, io.Discard, ExportOptions{Operator: true}); err != nil {
		t.Fatal(err)
	}
	kinds := singleKinds
	if onPostgres {
		// PostgreSQL keeps no import markers: a context being written is
		// one without header.
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == kindImport })
	} else if err := e.st.Put(store.KV{Key: singleKey(kindImport, k), Value: "{}"}); err != nil {
		t.Fatal(err)
	}
	count := func(key Key) map[string]int {
		n := map[string]int{}
		for _, kind := range kinds {
			if _, found, _ := e.st.Get(singleKey(kind, key)); found {
				n[kind]++
			}
		}
		for _, kind := range recordKinds {
			e.st.Scan(recordPrefix(kind, key), func(string, string) bool { n[kind]++; return true })
		}
		return n
	}
	before := count(other)
	for _, kind := range append(slices.Clone(kinds), recordKinds...) {
		if count(k)[kind] == 0 {
			t.Fatalf("setup: no %q records", kind)
		}
	}
	if err := e.Delete(k); err != nil {
		t.Fatal(err)
	}
	if left := count(k); len(left) != 0 {
		t.Fatalf("records left after Delete: %v", left)
	}
	// Nothing else in the store names the deleted context (PostgreSQL:
	// every record is under the context's row, removed with it).
	e.st.Scan(map[bool]string{true: kindContext + ":t:", false: ""}[onPostgres], func(key, _ string) bool {
		if strings.Contains(key, ":c:") || strings.HasSuffix(key, ":c") {
			t.Errorf("stray record %q", key)
		}
		return true
	})
	if _, _, err := e.Response("t", "resp_c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted context's response is still found: %v", err)
	}
	e.st.Scan(map[bool]string{true: kindContext + ":t:", false: kindResponseIndex + ":"}[onPostgres], func(key, v string) bool {
		if v == "c" {
			t.Errorf("stray response index %q -> %q", key, v)
		}
		return true
	})
	if _, _, err := e.Response("t", "resp_c2"); err != nil {
		t.Errorf("neighbour lost its response: %v", err)
	}
	if after := count(other); len(after) != len(before) || after[kindVector] != before[kindVector] || after[kindMessage] != before[kindMessage] {
		t.Fatalf("neighbour lost records: %v -> %v", before, after)
	}
}

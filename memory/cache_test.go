package memory

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// prose returns n words drawn from a vocabulary of a few thousand, so that
// the lens index grows as with real text.
func prose(r *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		w := r.IntN(3000)
		sb.WriteString(fmt.Sprintf("w%c%c%d", 'a'+w%26, 'a'+w/26%26, w/676))
		if r.IntN(10) == 0 {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

// fillContext imports about n messages of prose into k.
func fillContext(t testing.TB, e *Engine, k Key, n int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for s := 0; s*20 < n; s++ {
		var msgs []Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, msg("user", prose(r, 10+r.IntN(40))), msg("assistant", prose(r, 40+r.IntN(120))))
		}
		kk := k
		kk.Thread = fmt.Sprint(s)
		if _, err := e.Import(kk, msgs, at.Add(time.Duration(s)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestFootprintTracksHeap: the footprint the cache budget charges for a
// loaded context is within a third of the Go heap the context really
// takes, and a context grown by ingest is charged as the same context
// read back from the store.
func TestFootprintTracksHeap(t *testing.T) {
	dir := t.TempDir()
	k := Key{Tenant: "t", Context: "big"}
	e := openEngine(t, dir)
	fillContext(t, e, k, 3000, 1)
	ingested := e.CachedBytes()
	e.Close()

	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	before := heapAlloc()
	if _, err := e.Stats(k); err != nil {
		t.Fatal(err)
	}
	grown := heapAlloc() - before
	charged := e.CachedBytes()
	t.Logf("charged %d bytes, heap grew %d (%.2fx); charged after ingest %d", charged, grown, float64(charged)/float64(grown), ingested)
	if r := float64(charged) / float64(grown); r < 0.75 || r > 1.33 {
		t.Errorf("charged %d bytes for a context that took %d on the heap (%.2fx)", charged, grown, r)
	}
	if r := float64(ingested) / float64(charged); r < 0.9 || r > 1.1 {
		t.Errorf("charged %d after ingest, %d after reload", ingested, charged)
	}
}

// TestCacheBudgetEvictsIdleLeastRecentlyUsed: with a byte budget, loading
// contexts evicts idle ones least recently used first, keeping the charged
// sum within the budget; a context larger than the whole budget is still
// served (never evicted while in use) and leaves when another is needed;
// nothing evicted is lost.
func TestCacheBudgetEvictsIdleLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, dir)
	keys := make([]Key, 5)
	for i := range keys {
		keys[i] = Key{Tenant: "t", Context: fmt.Sprintf("c%d", i)}
		fillContext(t, e, keys[i], 200, uint64(i))
	}
	huge := Key{Tenant: "t", Context: "huge"}
	fillContext(t, e, huge, 1000, 9)
	e.Close()

	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Stats(keys[0]); err != nil {
		t.Fatal(err)
	}
	one := e.CachedBytes()
	e.Close()
	budget := one*5/2 + one/4 // room for two and a half contexts
	e, err = testOpen(t, Options{Dir: dir, Now: fixedClock(), CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	loaded := func() map[string]bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		out := map[string]bool{}
		for _, c := range e.loaded {
			out[c.key.Context] = true
		}
		return out
	}
	want := map[int]int{}
	for i, k := range keys {
		st, err := e.Stats(k)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = st.Messages
		if got := e.CachedBytes(); got > budget {
			t.Fatalf("after loading %d contexts: %d bytes charged, budget %d", i+1, got, budget)
		}
	}
	if l := loaded(); len(l) != 2 || !l["c3"] || !l["c4"] {
		t.Fatalf("loaded %v, want the two most recently used, c3 and c4", l)
	}
	// Using c3 again makes c4 the least recently used.
	if _, err := e.Stats(keys[3]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Stats(keys[0]); err != nil {
		t.Fatal(err)
	}
	if l := loaded(); !l["c3"] || !l["c0"] || l["c4"] {
		t.Fatalf("loaded %v, want c3 and c0 (c4 least recently used)", l)
	}
	// A context larger than the budget is served, alone.
	st, err := e.Stats(huge)
	if err != nil || st.Messages == 0 {
		t.Fatalf("huge context: %+v, %v", st, err)
	}
	if l := loaded(); len(l) != 1 || !l["huge"] {
		t.Fatalf("loaded %v, want only the huge context", l)
	}
	if _, err := e.Stats(keys[1]); err != nil {
		t.Fatal(err)
	}
	if l := loaded(); l["huge"] {
		t.Fatalf("the huge context stayed after another was needed: %v", l)
	}
	for i, k := range keys {
		st, err := e.Stats(k)
		if err != nil || st.Messages != want[i] {
			t.Fatalf("%s after eviction: %d messages, %v; want %d", k.Context, st.Messages, err, want[i])
		}
	}
}

// TestDryRunLeavesFootprint: a dry run that stages new messages and takes
// them back leaves the context's footprint as it was.
func TestDryRunLeavesFootprint(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "dry"}
	fillContext(t, e, k, 100, 3)
	c, err := e.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	before := c.footprint()
	c.mu.Unlock()
	r := rand.New(rand.NewPCG(4, 4))
	msgs := []Message{msg("user", prose(r, 300)), msg("assistant", prose(r, 300)), msg("user", prose(r, 30))}
	if _, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 3000, PerMessage: 4, TailPercent: 40, DryRun: true, AsLive: true}); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	after := c.footprint()
	c.mu.Unlock()
	if after != before {
		t.Fatalf("footprint %d after a dry run, %d before", after, before)
	}
}

package memory

import (
	"fmt"
	"sync"
	"testing"
)

// ask sends one live question and keeps its window, as the proxy does.
func ask(t *testing.T, e *Engine, k Key, q string, budget int) *Window {
	t.Helper()
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: budget, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	e.KeepWindow(w, WindowMeta{Budget: budget + 4, Tokens: w.Tokens + 4, Status: 200})
	return w
}

// TestKeptWindows: the last KeepWindows live windows are kept, newest
// first, with their entries' reasons, the omitted matches, the memory text
// and the tail as the model saw them.
func TestKeptWindows(t *testing.T) {
	e, err := testOpen(t, Options{Now: fixedClock(), KeepWindows: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t", Context: "kept"}
	if _, err := e.Import(k, conversation(80, 2), e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	var last *Window
	for i := 0; i < 5; i++ {
		last = ask(t, e, k, fmt.Sprintf("What is my locker combination? (%d)", i), 2000)
	}
	ws, err := e.Windows(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 {
		t.Fatalf("%d windows kept, want 3", len(ws))
	}
	v := ws[0]
	if v.Question != "What is my locker combination? (4)" || ws[2].Question != "What is my locker combination? (2)" {
		t.Errorf("questions newest first: %q ... %q", v.Question, ws[2].Question)
	}
	if v.Memory != last.Memory || v.Budget != 2004 || v.Tokens != last.Tokens+4 || v.UpstreamStatus != 200 || v.Expanded != last.Expanded {
		t.Errorf("window view %+v\ndoes not match the window sent (%d tokens, %d expanded)", v, last.Tokens, last.Expanded)
	}
	if len(v.Tail) != 1 || v.Tail[0].Text != v.Question {
		t.Errorf("tail %+v", v.Tail)
	}
	found := false
	for _, en := range v.Entries {
		if en.Reason == "" {
			t.Errorf("entry without a reason: %+v", en)
		}
		for _, term := range en.Terms {
			found = found || (term == "locker" && en.Reason == "expanded" && en.Score > 0)
		}
	}
	if !found {
		t.Errorf("no expanded entry matched \"locker\": %+v", v.Entries)
	}
}

// TestFocusTelemetry: windows count in their nodes' telemetry; the same
// question twice swaps only the newest history its stored first asking
// moved (what budget the matches leave details the newest history), a
// different question more; the telemetry is stored and read back.
func TestFocusTelemetry(t *testing.T) {
	dir := t.TempDir()
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Tenant: "t", Context: "tel"}
	if _, err := e.Import(k, conversation(80, 2), e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	w1 := ask(t, e, k, "What is my locker combination?", 2000)
	ask(t, e, k, "What is my locker combination?", 2000)
	ask(t, e, k, "What is my cat named?", 2000)
	e.SettleFocus()
	ws, err := e.Windows(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 || ws[1].SwapRate > 0.1 || ws[0].SwapRate <= ws[1].SwapRate {
		t.Fatalf("swap rates (newest first): %v %v %v", ws[0].SwapRate, ws[1].SwapRate, ws[2].SwapRate)
	}
	// The block that holds the fact was shown, and its parent opened, by
	// the first two windows (one question asked twice).
	var fact *EntryInfo
	for i, en := range w1.Entries {
		if en.Level == 0 && en.Reason == "expanded" && en.Score > 0 && en.Detail == "verbatim" {
			fact = &w1.Entries[i]
			break
		}
	}
	if fact == nil {
		t.Fatalf("no expanded block in the first window: %+v\n%s", w1.Entries, w1.Memory)
	}
	c, _ := e.acquire(k, false)
	blk := c.tree.Block(fact.First)
	c.telMu.Lock()
	f, pf := c.focusOf(blk), c.focusOf(c.tree.Parent(blk))
	c.telMu.Unlock()
	c.mu.Unlock()
	if f.Resident < 2 || f.Questions < 1 || f.LastResident == 0 || pf.Expanded < 2 || pf.LastExpanded == 0 {
		t.Errorf("telemetry of the fact's block %+v, of its parent %+v", f, pf)
	}
	tot := e.FocusTotals()
	if tot.Windows != 3 || tot.Expansions == 0 || tot.Swaps == 0 {
		t.Errorf("totals %+v", tot)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	c2, err := e2.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	c2.telMu.Lock()
	f2, pf2 := c2.focusOf(c2.tree.Block(fact.First)), c2.focusOf(c2.tree.Parent(c2.tree.Block(fact.First)))
	c2.telMu.Unlock()
	c2.mu.Unlock()
	if f2 != f || pf2 != pf {
		t.Errorf("telemetry read back %+v %+v, stored %+v %+v", f2, pf2, f, pf)
	}
	if err := e2.Delete(k); err != nil {
		t.Fatal(err)
	}
	n := 0
	e2.st.Scan(recordPrefix(kindFocus, k), func(string, string) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d telemetry records left after Delete", n)
	}
}

// TestKeeperConcurrent: requests, the keeper, views and a delete at once
// (run with -race): every window is kept or counted dropped, and nothing
// of a deleted context is stored afterwards.
func TestKeeperConcurrent(t *testing.T) {
	e, err := testOpen(t, Options{Dir: t.TempDir(), Now: fixedClock(), KeepWindows: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t", Context: "busy"}
	if _, err := e.Import(k, conversation(60, 4), e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ask(t, e, k, fmt.Sprintf("locker %d %d?", g, i), 1500)
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, err := e.Windows(k, nil); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	e.SettleFocus()
	if tot := e.FocusTotals(); tot.Windows+tot.Dropped != 40 {
		t.Errorf("totals %+v, want 40 windows kept or dropped", tot)
	}
	if ws, _ := e.Windows(k, nil); len(ws) != 5 {
		t.Errorf("%d windows kept, want 5", len(ws))
	}
	w := ask(t, e, k, "one more?", 1500)
	_ = w
	if err := e.Delete(k); err != nil {
		t.Fatal(err)
	}
	e.SettleFocus()
	n := 0
	e.st.Scan(recordPrefix(kindFocus, k), func(string, string) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d telemetry records of a deleted context", n)
	}
}

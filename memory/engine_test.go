package memory

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/tokens"
)

// fixedClock returns a clock that advances one minute per call.
func fixedClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Minute)
		return t
	}
}

func openEngine(t testing.TB, dir string) *Engine {
	t.Helper()
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: 32, Fanout: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func msg(role, text string) Message { return Message{Role: role, Text: text} }

var words = strings.Fields(`the garden river mountain story window paper music kitchen travel winter summer
market bridge forest village teacher student engine yellow orange purple quiet gentle rapid ancient modern
coffee bread letter journey harbor island valley castle lantern mirror pocket ribbon saddle thunder`)

func filler(r *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

// conversation returns a chat whose third user turn holds a fact.
func conversation(turns int, seed uint64) []Message {
	r := rand.New(rand.NewPCG(seed, 7))
	var msgs []Message
	msgs = append(msgs, msg("system", "You are a helpful assistant."))
	for i := 0; i < turns; i++ {
		u := filler(r, 20+r.IntN(60))
		if i == 2 {
			u = "By the way, my locker combination is 4471-QK-93 and my cat is named Biscuit. " + u
		}
		msgs = append(msgs, msg("user", u), msg("assistant", filler(r, 30+r.IntN(80))))
	}
	return msgs
}

func TestReconcileIngestsOnlyNewSuffix(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t1", Context: "alice"}
	req := Request{Key: k, Budget: 4000, PerMessage: 4, TailPercent: 40}
	req.Messages = []Message{msg("system", "sys"), msg("user", "hello there")}
	w, err := e.Prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	if w.NewMessages != 2 || w.LastSeq != 1 {
		t.Fatalf("first turn: new %d last %d", w.NewMessages, w.LastSeq)
	}
	if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, msg("assistant", "hi, how can I help?"), false); err != nil {
		t.Fatal(err)
	}
	req.Messages = append(req.Messages, msg("assistant", "hi, how can I help?"), msg("user", "tell me a story"))
	w, err = e.Prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	if w.NewMessages != 1 || w.LastSeq != 3 {
		t.Fatalf("second turn: new %d last %d", w.NewMessages, w.LastSeq)
	}
	// Resending the same list stores nothing.
	w, err = e.Prepare(req)
	if err != nil || w.NewMessages != 0 {
		t.Fatalf("resend: new %d err %v", w.NewMessages, err)
	}
	// Editing the second user message branches and supersedes the old one.
	req.Messages[3] = msg("user", "tell me a poem instead")
	w, err = e.Prepare(req)
	if err != nil || w.NewMessages != 1 {
		t.Fatalf("edit: new %d err %v", w.NewMessages, err)
	}
	c, _, _ := e.get(k, false)
	if !c.msgs[3].Superseded || c.msgs[4].Superseded || c.msgs[4].Parent != 2 {
		t.Fatalf("branch state wrong: %+v %+v", *c.msgs[3], *c.msgs[4])
	}
	// A new chat that shares only the system prompt is a new thread, not an edit.
	req.Messages = []Message{msg("system", "sys"), msg("user", "a brand new chat")}
	if _, err := e.Prepare(req); err != nil {
		t.Fatal(err)
	}
	if c.msgs[1].Superseded {
		t.Fatal("a new chat superseded an old thread")
	}
}

func TestFactFromTurn3RecalledAtTurn300AndAfterRestart(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, dir)
	k := Key{Tenant: "t1", Context: "bob"}
	conv := conversation(300, 1)
	// Ingest turn by turn as a client would, then ask.
	for i := 3; i <= len(conv); i += 2 {
		if _, err := e.Prepare(Request{Key: k, Messages: conv[:i], Budget: 2048 - 256, PerMessage: 5, TailPercent: 40}); err != nil {
			t.Fatal(err)
		}
	}
	ask := append(append([]Message(nil), conv...), msg("user", "What is my locker combination?"))
	w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: 2048 - 256, PerMessage: 5, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "4471-QK-93") {
		t.Fatalf("fact missing from window memory:\n%s", w.Memory)
	}
	if w.Tokens > 2048-256 {
		t.Fatalf("window %d tokens over budget", w.Tokens)
	}
	e.Close()

	// Restart; a brand-new chat of the same user still recalls it.
	e2 := openEngine(t, dir)
	w, err = e2.Prepare(Request{Key: k, Messages: []Message{msg("user", "Remind me: what's my locker combination?")}, Budget: 1024, PerMessage: 5, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "4471-QK-93") {
		t.Fatalf("fact missing after restart:\n%s", w.Memory)
	}
	if w.HistoryTokens < 10000 {
		t.Fatalf("history tokens %d: history not reloaded", w.HistoryTokens)
	}
}

// promptTokens counts the prompt the proxy would send for w.
func promptTokens(c tokens.Counter, r Request, w *Window) int {
	n := 0
	for i := 0; i < w.Leading; i++ {
		n += r.PerMessage + c.Count(r.Messages[i].Text)
	}
	if w.Memory != "" {
		n += r.PerMessage + c.Count(w.Memory)
	}
	for i := w.TailFrom; i < len(r.Messages); i++ {
		n += r.PerMessage + c.Count(r.Messages[i].Text)
	}
	return n
}

func TestWindowInvariantsProperty(t *testing.T) { windowInvariants(t, RenderChronological) }

func TestOutlineWindowInvariantsProperty(t *testing.T) { windowInvariants(t, RenderOutline) }

func windowInvariants(t *testing.T, render string) {
	rapid.Check(t, func(t *rapid.T) {
		e, err := testOpen(t, Options{Now: fixedClock(), BlockTokens: rapid.IntRange(8, 64).Draw(t, "k"), Fanout: rapid.IntRange(2, 10).Draw(t, "f"),
			Render: render, OutlineShare: rapid.Float64Range(0.05, 1).Draw(t, "share")})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		conv := conversation(rapid.IntRange(1, 60).Draw(t, "turns"), rapid.Uint64().Draw(t, "seed"))
		k := Key{Tenant: "p", Context: "c"}
		budget := rapid.IntRange(64, 6000).Draw(t, "budget")
		for i := 2; i <= len(conv); i += rapid.IntRange(1, 6).Draw(t, "step") {
			r := Request{Key: k, Messages: conv[:i], Budget: budget, PerMessage: 4, TailPercent: rapid.IntRange(10, 90).Draw(t, "tail")}
			w, err := e.Prepare(r)
			if err != nil {
				if err == ErrTooLong {
					continue
				}
				t.Fatal(err)
			}
			if got := promptTokens(e.Counter(), r, w); got > budget {
				t.Fatalf("prompt %d tokens > budget %d (window says %d)\n%s", got, budget, w.Tokens, w.Memory)
			}
			// Determinism: same memory + same request => same window.
			r.DryRun = true
			w1, err1 := e.Prepare(r)
			w2, err2 := e.Prepare(r)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if w1.Memory != w2.Memory || w1.TailFrom != w2.TailFrom || w1.Tokens != w2.Tokens {
				t.Fatalf("two dry runs differ")
			}
		}
	})
}

func TestConcurrentRequestsLoseNothing(t *testing.T) {
	e := openEngine(t, t.TempDir())
	k := Key{Tenant: "t", Context: "shared"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			msgs := []Message{msg("user", fmt.Sprintf("chat %d opening", g))}
			for turn := 0; turn < 10; turn++ {
				w, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 2000, PerMessage: 4, TailPercent: 40})
				if err != nil {
					t.Error(err)
					return
				}
				reply := msg("assistant", fmt.Sprintf("reply %d-%d", g, turn))
				if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
					t.Error(err)
					return
				}
				msgs = append(msgs, reply, msg("user", fmt.Sprintf("chat %d turn %d", g, turn)))
			}
		}(g)
	}
	wg.Wait()
	list, err := e.List("t")
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	// 8 chats × (1 opening + 10 replies + 9 stored follow-ups... ) every
	// message sent or answered is stored exactly once.
	if want := 8 * (1 + 10 + 9); list[0].Messages != want {
		t.Fatalf("stored %d messages, want %d", list[0].Messages, want)
	}
}

func TestBadKeysRejected(t *testing.T) {
	e := openEngine(t, "")
	for _, k := range []Key{{Tenant: "", Context: "x"}, {Tenant: "a:b", Context: "x"}, {Tenant: "a", Context: ""}, {Tenant: "a", Context: strings.Repeat("x", 300)}} {
		if _, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "hi")}, Budget: 100}); err == nil {
			t.Errorf("key %+v accepted", k)
		}
	}
}

func TestTooLongLastMessage(t *testing.T) {
	e := openEngine(t, "")
	_, err := e.Prepare(Request{Key: Key{Tenant: "a", Context: "b"}, Messages: []Message{msg("user", strings.Repeat("word ", 500))}, Budget: 100, PerMessage: 4, TailPercent: 40})
	if err != ErrTooLong {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

func TestTailNeverStartsWithToolResult(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "agent"}
	var msgs []Message
	for i := 0; i < 30; i++ {
		msgs = append(msgs, msg("user", fmt.Sprintf("step %d: look up the weather in city number %d and then summarize everything", i, i)),
			msg("assistant", fmt.Sprintf("[tool call c%d] weather({\"city\":%d})", i, i)),
			msg("tool", fmt.Sprintf("[tool result c%d] sunny, 21 degrees, light wind from the west, humidity 40 percent", i)),
			msg("assistant", fmt.Sprintf("City %d is sunny and mild today with a light westerly wind.", i)))
	}
	msgs = append(msgs, msg("user", "and now?"))
	for budget := 150; budget < 1500; budget += 37 {
		w, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: budget, PerMessage: 4, TailPercent: 40})
		if err != nil {
			t.Fatal(err)
		}
		if msgs[w.TailFrom].Role == "tool" {
			t.Fatalf("budget %d: tail starts with a tool result", budget)
		}
	}
}

func TestLateResponseDoesNotSupersedeLiveThread(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "race"}
	turn1 := []Message{msg("user", "first question")}
	w1, err := e.Prepare(Request{Key: k, Messages: turn1, Budget: 2000, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	// The client continues with its own (trimmed) copy of the reply before
	// the proxy stored the reply.
	turn2 := append(turn1, msg("assistant", "the answer"), msg("user", "follow-up"))
	if _, err := e.Prepare(Request{Key: k, Messages: turn2, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	if err := e.AppendResponse(k, w1.LastSeq, w1.NextSeq, msg("assistant", "the answer "), false); err != nil {
		t.Fatal(err)
	}
	c, _, _ := e.get(k, false)
	if c.msgs[1].Superseded || c.msgs[2].Superseded || !c.msgs[3].Superseded {
		t.Fatalf("live thread superseded: %+v %+v %+v", *c.msgs[1], *c.msgs[2], *c.msgs[3])
	}
	// A regeneration (same list, new reply) does supersede the old reply.
	w3, err := e.Prepare(Request{Key: k, Messages: turn1, Budget: 2000, PerMessage: 4, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AppendResponse(k, w3.LastSeq, w3.NextSeq, msg("assistant", "a regenerated answer"), false); err != nil {
		t.Fatal(err)
	}
	if !c.msgs[1].Superseded || c.msgs[4].Superseded {
		t.Fatalf("regeneration did not supersede: %+v %+v", *c.msgs[1], *c.msgs[4])
	}
}

// TestEvictionUnderLoadLosesNothing runs many contexts through an engine
// that holds only two in memory, concurrently, and checks every message.
func TestEvictionUnderLoadLosesNothing(t *testing.T) {
	t.Run("count", func(t *testing.T) { evictionUnderLoad(t, Options{MaxLoaded: 2}) })
	// A budget of 3 KiB holds about one of these contexts.
	t.Run("bytes", func(t *testing.T) { evictionUnderLoad(t, Options{CacheBytes: 3 << 10}) })
}

func evictionUnderLoad(t *testing.T, opts Options) {
	dir := t.TempDir()
	opts.Dir, opts.Now = dir, fixedClock()
	e, err := testOpen(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			k := Key{Tenant: "t", Context: fmt.Sprintf("ctx%d", g%3)}
			msgs := []Message{msg("user", fmt.Sprintf("worker %d opens", g))}
			for turn := 0; turn < 15; turn++ {
				w, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 2000, PerMessage: 4, TailPercent: 40})
				if err != nil {
					t.Error(err)
					return
				}
				reply := msg("assistant", fmt.Sprintf("reply %d/%d", g, turn))
				if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
					t.Error(err)
					return
				}
				msgs = append(msgs, reply, msg("user", fmt.Sprintf("worker %d turn %d", g, turn)))
			}
		}(g)
	}
	wg.Wait()
	e.Close()
	e2, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	for i := 0; i < 3; i++ {
		st, err := e2.Stats(Key{Tenant: "t", Context: fmt.Sprintf("ctx%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		// Two workers per context, each: 1 opening + 15 replies + 14 follow-ups.
		if st.Messages != 2*30 {
			t.Fatalf("ctx%d stored %d messages, want 60", i, st.Messages)
		}
	}
}

// TestSmallWindowDetailsHeadless: a window of headlessWindow tokens or
// less writes its details under no header naming a span (their times date
// them), still holds the fact and stays within budget; a larger window
// keeps the headers.
func TestSmallWindowDetailsHeadless(t *testing.T) {
	e, err := testOpen(t, Options{Now: fixedClock(), BlockTokens: 32, Fanout: 8, Render: RenderOutline})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t1", Context: "bob"}
	if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: "old"}, conversation(300, 1)[1:], time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	for _, budget := range []int{headlessWindow / 2, headlessWindow, 2 * headlessWindow} {
		r := Request{Key: k, Messages: []Message{msg("user", "What is my locker combination?")}, Budget: budget, PerMessage: 5, TailPercent: 40, DryRun: true}
		w, err := e.Prepare(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := promptTokens(e.Counter(), r, w); got > r.Budget {
			t.Fatalf("budget %d: prompt %d tokens over budget", budget, got)
		}
		if !strings.Contains(w.Memory, "4471-QK-93") {
			t.Fatalf("budget %d: fact missing from the details:\n%s", budget, w.Memory)
		}
		if headed := strings.Contains(w.Memory, "\nDetails of ["); headed != (budget > headlessWindow) {
			t.Fatalf("budget %d: details headers %v:\n%s", budget, headed, w.Memory)
		}
	}
}

// TestOutlineRenderIsQueryIndependent: in RenderOutline mode two unrelated
// questions get the same outline, byte for byte (the upstream's prompt cache
// reuses it), and the fact a question needs appears in the details after it.
func TestOutlineRenderIsQueryIndependent(t *testing.T) {
	e, err := testOpen(t, Options{Now: fixedClock(), BlockTokens: 32, Fanout: 8, Render: RenderOutline})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t1", Context: "bob"}
	conv := conversation(300, 1)
	if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: "old"}, conv[1:], time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	prepare := func(q string) *Window {
		r := Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 2048, PerMessage: 5, TailPercent: 40, DryRun: true, KeepFocus: true}
		w, err := e.Prepare(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := promptTokens(e.Counter(), r, w); got > r.Budget {
			t.Fatalf("prompt %d tokens over budget %d", got, r.Budget)
		}
		return w
	}
	outline := func(m string) string {
		if i := strings.Index(m, "\nDetails of ["); i >= 0 {
			return m[:i]
		}
		return strings.TrimSuffix(m, "\n"+Closing)
	}
	a := prepare("What is my locker combination?")
	b := prepare("Which castle had the thunder lantern?")
	if !strings.Contains(a.Memory, "4471-QK-93") {
		t.Fatalf("fact missing from the details:\n%s", a.Memory)
	}
	if !strings.Contains(a.Memory, "\nDetails of [") {
		t.Fatalf("no details zone:\n%s", a.Memory)
	}
	if oa, ob := outline(a.Memory), outline(b.Memory); oa != ob || len(oa) < len(a.Memory)/3 {
		t.Fatalf("outlines differ or are short (%d, %d of %d bytes)", len(oa), len(ob), len(a.Memory))
	}
}

// TestSmallWindowSaysEachTimeOnce: in a window of stampedWindow tokens or
// less the details write a time once, on a line of its own, for the blocks
// under it, each block with its role alone; the prompt stays within budget;
// a larger window keeps each block's header. The smallest window's memory
// opens with the short preamble.
func TestSmallWindowSaysEachTimeOnce(t *testing.T) {
	e, err := testOpen(t, Options{Now: fixedClock(), BlockTokens: 32, Fanout: 8, Render: RenderOutline})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t1", Context: "bob"}
	r := rand.New(rand.NewPCG(3, 7))
	// Threads of filler, one a day, and on the fourth day one afternoon's
	// notes about the boat, all at one time.
	for i := 0; i < 7; i++ {
		var conv []Message
		for j := 0; j < 30; j++ {
			conv = append(conv, msg("user", filler(r, 40)), msg("assistant", filler(r, 50)))
		}
		if i == 3 {
			conv = conv[:0]
			for j := 0; j < 8; j++ {
				conv = append(conv, msg("user", fmt.Sprintf("Boat note %d: the sailboat hull needs coat %d.", j, j)), msg("assistant", "Noted."))
			}
		}
		at := time.Date(2025, 1, 6+i, 14, 30, 0, 0, time.UTC)
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint("day", i)}, conv, at); err != nil {
			t.Fatal(err)
		}
	}
	stamp := "[2025-01-09 14:30]"
	for _, budget := range []int{stampedWindow, 2 * stampedWindow, 8 * stampedWindow} {
		req := Request{Key: k, Messages: []Message{msg("user", "What did I note about the sailboat hull?")}, Budget: budget, PerMessage: 5, TailPercent: 40, DryRun: true}
		w, err := e.Prepare(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := promptTokens(e.Counter(), req, w); got > req.Budget {
			t.Fatalf("budget %d: prompt %d tokens over budget", budget, got)
		}
		// The outline's preamble too costs less where it would take more
		// than its share of the window.
		pre := e.preambleFor(budget)
		if !strings.HasPrefix(w.Memory, pre) || budget == stampedWindow && pre != SmallPreamble || budget == 8*stampedWindow && pre != OutlinePreamble {
			t.Fatalf("budget %d: the memory does not open with the preamble for its size:\n%s", budget, w.Memory)
		}
		notesShown := strings.Count(w.Memory, "Boat note ")
		if budget > stampedWindow {
			if strings.Contains(w.Memory, stamp+"\n") || !strings.Contains(w.Memory, stamp+" user: ") {
				t.Fatalf("budget %d: blocks not under their own headers:\n%s", budget, w.Memory)
			}
			continue
		}
		if strings.Count(w.Memory, stamp+"\n") != 1 || !strings.Contains(w.Memory, stamp+"\nuser: Boat note ") || notesShown < 4 {
			t.Fatalf("budget %d: the time is not said once for the %d notes under it:\n%s", budget, notesShown, w.Memory)
		}
		if strings.Contains(w.Memory, stamp+" user: ") {
			t.Fatalf("budget %d: a block under its own header:\n%s", budget, w.Memory)
		}
	}
}

package memory

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/tokens"
)

// callCounter is a remote-like BatchCounter that records its calls: each
// call is one round trip. Its counts differ from the estimate's, so a
// cost the engine took from the estimate shows.
type callCounter struct {
	mu    sync.Mutex
	calls int
	texts int
}

func (c *callCounter) Name() string { return "calls" }

func (c *callCounter) Count(s string) int { return c.CountBatch([]string{s})[0] }

func (c *callCounter) CountBatch(ts []string) []int {
	c.mu.Lock()
	c.calls++
	c.texts += len(ts)
	c.mu.Unlock()
	out := make([]int, len(ts))
	for i, t := range ts {
		out[i] = wordCost(t)
	}
	return out
}

// wordCost is callCounter's tokenizer: two tokens a word, one a text.
func wordCost(s string) int {
	if s == "" {
		return 0
	}
	return 2*len(strings.Fields(s)) + 1
}

func (c *callCounter) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.calls
	c.calls = 0
	return n
}

// TestOneCountPerIngest: every turn costs the counter one call: for the
// request (its new message, the blocks, gists and headers it made, the
// reply stored after the previous turn, the window assembled from stored
// counts); storing the reply costs none. Every stored cost is the
// counter's, not the estimate's, once the next request came.
func TestOneCountPerIngest(t *testing.T) {
	cc := &callCounter{}
	pol, err := policy.Compile([]policy.Rule{{Name: "emails", Detector: "email", Action: "redact"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, render := range []string{RenderOutline, RenderChronological} {
		t.Run(render, func(t *testing.T) {
			e, err := testOpen(t, Options{Counter: cc, Render: render, Policy: pol})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			r := rand.New(rand.NewPCG(3, 4))
			words := strings.Fields("the garden river mountain story window paper music kitchen travel winter summer market bridge forest village")
			sent := func(n int) string {
				w := make([]string, n)
				for i := range w {
					w[i] = words[r.IntN(len(words))]
				}
				return strings.Join(w, " ") + "."
			}
			k := Key{Tenant: "t", Context: "c"}
			for s := 0; s < 12; s++ {
				var msgs []Message
				for i := 0; i < 8; i++ {
					msgs = append(msgs, Message{Role: "user", Text: sent(40)}, Message{Role: "assistant", Text: sent(60) + " Mail ann@example.com."})
				}
				cc.take()
				if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, time.Now().Add(-time.Duration(100-s)*time.Hour)); err != nil {
					t.Fatal(err)
				}
				if n := cc.take(); n != 1 {
					t.Fatalf("import of 16 messages: %d counter calls, want 1", n)
				}
			}
			msgs := []Message{{Role: "system", Text: "You are helpful."}}
			for turn := 0; turn < 12; turn++ {
				msgs = append(msgs, Message{Role: "user", Text: sent(50) + " garden river"})
				cc.take()
				w, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 1500, PerMessage: 8, TailPercent: 40})
				if err != nil {
					t.Fatal(err)
				}
				if n := cc.take(); n != 1 {
					t.Errorf("turn %d: %d counter calls to prepare the window, want 1", turn, n)
				}
				reply := Message{Role: "assistant", Text: sent(60)}
				if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
					t.Fatal(err)
				}
				if n := cc.take(); n != 0 {
					t.Errorf("turn %d: %d counter calls to store the reply, want 0", turn, n)
				}
				msgs = append(msgs, reply)
			}
			// The same list again: nothing new, the last reply's counts made.
			if _, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 1500, PerMessage: 8, TailPercent: 40}); err != nil {
				t.Fatal(err)
			}
			if n := cc.take(); n != 1 {
				t.Errorf("%d counter calls for a resent list, want 1 (the last reply's counts)", n)
			}
			checkCounted(t, e, k, pol)
		})
	}
}

// TestDeferredCountsSurviveRestart: a reply stored just before the process
// stops keeps the estimate's costs on disk, marked; after a restart the
// next request counts them (one call) and stores them exact.
func TestDeferredCountsSurviveRestart(t *testing.T) {
	cc := &callCounter{}
	dir := t.TempDir()
	k := Key{Tenant: "t", Context: "c"}
	e, err := testOpen(t, Options{Dir: dir, Counter: cc})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Role: "user", Text: strings.Repeat("alpha beta gamma delta. ", 40)}}
	w, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 4000, PerMessage: 8, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	reply := Message{Role: "assistant", Text: strings.Repeat("epsilon zeta eta theta iota. ", 60)}
	if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, reply, false); err != nil {
		t.Fatal(err)
	}
	e.Close()
	cc.take()

	e, err = testOpen(t, Options{Dir: dir, Counter: cc})
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, reply, Message{Role: "user", Text: "and then?"})
	if _, err := e.Prepare(Request{Key: k, Messages: msgs, Budget: 4000, PerMessage: 8, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	if n := cc.take(); n != 1 {
		t.Errorf("%d counter calls after the restart, want 1", n)
	}
	checkCounted(t, e, k, nil)
	e.Close()

	e, err = testOpen(t, Options{Dir: dir, Counter: cc})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	checkCounted(t, e, k, nil)
	if n := cc.take(); n != 0 {
		t.Errorf("%d counter calls to load exact counts, want 0", n)
	}
}

// checkCounted asserts that every stored cost of k is the callCounter's.
func checkCounted(t *testing.T, e *Engine, k Key, pol *policy.Policy) {
	t.Helper()
	c, err := e.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.mu.Unlock()
	if c.uncounted != nil {
		t.Errorf("counts still deferred")
	}
	total := 0
	for _, m := range c.msgs {
		total += m.Tokens
		if m.Uncounted {
			t.Errorf("message %d still marked uncounted", m.Seq)
		}
	}
	if total != c.rec.Tokens {
		t.Errorf("context tokens %d, messages sum to %d", c.rec.Tokens, total)
	}
	for l := 0; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			n := c.tree.Node(l, i)
			if n.DetailsHead != wordCost(detailsHeader(n)) {
				t.Fatalf("node %d/%d: details head %d, want %d", l, i, n.DetailsHead, wordCost(detailsHeader(n)))
			}
			if l == 0 {
				lead, marks := blockHeader(n.Time, n.Role), 0
				if n.Part > 0 {
					lead, marks = lead+"…", 1
				}
				head := leadCost(lead, strings.TrimLeft(n.Text, " "), n.Text, marks)
				if n.Tokens != wordCost(n.Text) || n.Head != head {
					t.Fatalf("block %d: tokens %d head %d, want %d and %d", i, n.Tokens, n.Head, wordCost(n.Text), head)
				}
				join := 0
				if prev := c.tree.Block(i - 1); n.Part > 0 {
					join = max(-1, wordCost(prev.Text+n.Text)-prev.Tokens-n.Tokens)
				}
				if n.Join != join {
					t.Fatalf("block %d: join %d, want %d", i, n.Join, join)
				}
				if len(n.Spans) > 0 {
					red, _, _ := pol.Apply(n.Text, toPolicySpans(n.Spans), nil)
					if n.Cost != max(n.Tokens, wordCost(red)) {
						t.Fatalf("block %d: cost %d of a redacted block, want %d", i, n.Cost, max(n.Tokens, wordCost(red)))
					}
				} else if n.Cost != n.Tokens {
					t.Fatalf("block %d: cost %d != tokens %d", i, n.Cost, n.Tokens)
				}
				continue
			}
			sum := 0
			for _, ch := range c.tree.Children(n) {
				sum += ch.Tokens
			}
			short := max(1, wordCost("\n~ "+n.Short)-wordCost("\n")+1-shortOverhead)
			if n.Tokens != sum || n.Cost != wordCost(n.Text) || n.ShortCost != short || n.Head != leadCost(gistHeader(n.Time, n.TimeEnd), n.Text, n.Text, 0) {
				t.Fatalf("gist %d/%d: tokens %d (children %d), cost %d/%d, short %d/%d, head %d", l, i, n.Tokens, sum,
					n.Cost, wordCost(n.Text), n.ShortCost, short, n.Head)
			}
		}
	}
}

// TestTallyTexts: a tally counts each distinct text once and writes every
// field that asked for it; empty texts cost nothing.
func TestTallyTexts(t *testing.T) {
	cc := &callCounter{}
	e, err := testOpen(t, Options{Counter: cc})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var tl tally
	var a, b, c, d int
	d = 99
	tl.count("one two", &a)
	tl.count("one two", &b)
	e.countHeader(&tl, "[header]", &c)
	tl.count("", &d)
	ran := false
	tl.after(func() { ran = a == 5 })
	e.settle(&tl)
	if a != 5 || b != 5 || c != 3 || d != 0 || !ran {
		t.Errorf("a=%d b=%d c=%d d=%d after=%v", a, b, c, d, ran)
	}
	if cc.take() != 1 || cc.texts != 2 {
		t.Errorf("%d texts counted, want 2 in one call", cc.texts)
	}
	// A header counted once is known afterwards: no call.
	e.countHeader(&tl, "[header]", &c)
	e.settle(&tl)
	if n := cc.take(); n != 0 {
		t.Errorf("%d calls for a known header", n)
	}
	var _ tokens.BatchCounter = cc
}

// leadCost is countLead's price with callCounter's tokenizer.
func leadCost(lead, rendered, priced string, marks int) int {
	return max(0, wordCost("\n"+lead+rendered)-wordCost(priced)-wordCost("\n")-marks)
}

package memory

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/glove"
)

// Gathering several blocks on one topic (issue 9, item 4 and the
// multi-evidence questions): each test reproduces a case the engine once
// failed.

func TestCurrentValue(t *testing.T) {
	cases := []struct {
		in, rest string
		current  bool
	}{
		{"Which company pays my salary these days?", "Which company pays my salary ?", true},
		{"What vehicle do we own at the moment?", "What vehicle do we own ?", true},
		{"Who is my employer currently?", "Who is my employer ?", true},
		{"Do I still go to the climbing wall, or not anymore?", "Do I still go to the climbing wall, or not ?", true},
		{"What have I bought for the new flat so far?", "What have I bought for the new flat ?", true},
		{"Where did we live in 2019?", "Where did we live in 2019?", false},
		// Words that only contain a temporal adverb are content.
		{"Is the nowhere bus known?", "Is the nowhere bus known?", false},
	}
	for _, c := range cases {
		rest, cur := currentValue(c.in)
		if rest != c.rest || cur != c.current {
			t.Errorf("currentValue(%q) = %q, %v; want %q, %v", c.in, rest, cur, c.rest, c.current)
		}
	}
}

// A fact told once outranks small talk that recurs all through the
// history with the same word: "drilling" in "the drilling starts at
// seven", told in every session, answers nothing about who drills.
func TestRecurringSmallTalkYieldsToFact(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "recur"}
	r := rand.New(rand.NewPCG(3, 4))
	at := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	const fact = "Hartley Bores will do the drilling for us in May"
	for s := range 60 {
		text := filler(r, 20) + "."
		if s%5 == 4 {
			text = "Morning! The neighbours are having building work done and the drilling starts at seven. " + filler(r, 12) + "."
		}
		if s == 2 {
			text = "Unrelated: " + fact + ", " + filler(r, 16) + "."
		}
		msgs := []Message{msg("user", text), msg("assistant", "Noted. "+filler(r, 10)+".")}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, at.Add(time.Duration(s)*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := e.Prepare(Request{Key: Key{Tenant: k.Tenant, Context: k.Context, Thread: "q"}, Messages: []Message{msg("user", "Who is doing the drilling?")}, Budget: 300, PerMessage: 4, TailPercent: 40, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, fact) {
		t.Errorf("the fact told once is not in the window; recurring small talk took its place:\n%s", w.Memory)
	}
	// And it leads: no recurring small talk scores as high.
	c, sc := w.why.c, w.why.scores
	factScore := -1.0
	for b, s := range sc {
		if strings.Contains(c.tree.Block(b).Text, "Hartley") {
			factScore = s
		}
	}
	for b, s := range sc {
		if text := c.tree.Block(b).Text; strings.Contains(text, "drilling starts") && s >= factScore {
			t.Errorf("small talk told in every fifth session scores %.2f, the fact told once %.2f: %q", s, factScore, text)
		}
	}
}

// bestOf keeps what sorting all scores would keep: the n highest, the
// newer block on ties.
func TestBestOfIsTheTopOfASort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 200 {
		scores := map[int]float64{}
		for range r.IntN(60) {
			scores[r.IntN(100)] = float64(r.IntN(8)) // many ties
		}
		n := 1 + r.IntN(20)
		ids := make([]int, 0, len(scores))
		for b := range scores {
			ids = append(ids, b)
		}
		slices.SortFunc(ids, func(x, y int) int {
			if scores[x] != scores[y] {
				return cmp.Compare(scores[y], scores[x])
			}
			return cmp.Compare(y, x)
		})
		want := map[int]bool{}
		for _, b := range ids[:min(n, len(ids))] {
			want[b] = true
		}
		if got := bestOf(scores, n); !maps.Equal(got, want) {
			t.Fatalf("trial %d: bestOf(%v, %d) = %v, want %v", trial, scores, n, got, want)
		}
	}
}

// Questions that gather what the user told over time are recognized by
// closed-class words alone, whatever the topic.
func TestAsksGathered(t *testing.T) {
	cases := []struct {
		q    string
		want bool
	}{
		{"What instruments have I learned?", true},
		{"Which towns have we lived in?", true},
		{"Name all the dentists I've seen.", true},
		{"Every restaurant we tried in Lyon, please", true},
		{"What is everyone in my family allergic to?", true},
		{"Does everybody at the office get a parking space?", true},
		{"Where do my parents live nowadays?", true},
		{"What phone am I using right now?", true},
		{"Which band is Tom in lately?", true},
		{"What did I eat on Tuesday?", false},
		{"Who fixed the boiler?", false},
		{"When is Ana's birthday?", false},
		// Words that only contain a quantifier are content.
		{"Where is the ballet school?", false},
		{"What did the haveli look like?", false},
	}
	for _, c := range cases {
		if got := asksGathered(c.q); got != c.want {
			t.Errorf("asksGathered(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

// openGloveEngine opens an in-memory engine with the GloVe vectors of
// `make glove`, or skips.
func openGloveEngine(t *testing.T) *Engine {
	t.Helper()
	v, err := glove.Open(filepath.Join("..", ".glove"))
	if err != nil {
		t.Skipf("skipping: GloVe missing (make glove): %v", err)
	}
	t.Cleanup(func() { v.Close() })
	e, err := testOpen(t, Options{Now: fixedClock(), BlockTokens: 32, Fanout: 8, Vectors: v})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// The newest statement of a slot and the one it replaced, and a list told
// across sessions, reach the window although they share no word with the
// question: the user tells them in words of their own, among small talk
// that recurs and the assistant's long replies.
func TestGatherTellsWhatChanged(t *testing.T) {
	e := openGloveEngine(t)
	k := Key{Tenant: "t", Context: "gather"}
	r := rand.New(rand.NewPCG(7, 8))
	at := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	told := map[int]string{
		3:  "We finally got a car of our own, a little blue Golf.",
		9:  "Had my first cello lesson today, my fingers hurt.",
		17: "Sold the Golf to my cousin and bought a secondhand Tesla Model 3.",
		24: "Picked up a cheap banjo at the flea market, practising every night.",
		33: "Our Tesla went back to the dealer; we lease a grey Kia Niro instead.",
		41: "Signed up for clarinet lessons with Mrs Odekirk on Thursdays.",
	}
	small := []string{"The bus was late again this morning.", "Made soup for lunch, too much salt.", "It rained all afternoon, nothing new."}
	for s := range 50 {
		text := small[r.IntN(len(small))] + " " + filler(r, 12) + "."
		if x, ok := told[s]; ok {
			text = small[r.IntN(len(small))] + " " + x
		}
		msgs := []Message{msg("user", text), msg("assistant", "Here is a story about a road trip in an old vehicle and a brass band that played every instrument: "+filler(r, 40)+".")}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, at.Add(time.Duration(s)*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"What vehicle do we have at the moment?", []string{told[33], told[17]}},
		{"Which instruments have I taken up?", []string{told[9], told[24], told[41]}},
	} {
		w, err := e.Prepare(Request{Key: Key{Tenant: k.Tenant, Context: k.Context, Thread: "q"}, Messages: []Message{msg("user", c.q)}, Budget: 1200, PerMessage: 4, TailPercent: 20, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.want {
			if !strings.Contains(w.Memory, s) {
				t.Errorf("%q: %q is not in the window:\n%s", c.q, s, w.Memory)
			}
		}
	}
}

// A list told across sessions reaches the window when only one of its
// items shares a word with the question: the others name values of the
// same kind (cities), found from the first (lens.Index.Kin), among
// statements told once about other things and small talk that repeats the
// question's words.
func TestGatherFindsTheListsKin(t *testing.T) {
	e := openGloveEngine(t)
	k := Key{Tenant: "t", Context: "kin"}
	r := rand.New(rand.NewPCG(9, 10))
	at := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	told := map[int]string{
		11: "Work sent me to Lisbon for the summit, lovely light there.",
		38: "Three nights in Porto with the sales crew, exhausting.",
		64: "Landed in Rotterdam at midnight for the client pitch.",
		90: "Spent a long weekend in Antwerp presenting our roadmap.",
	}
	things := []string{"a teapot", "wool socks", "a lemon tree", "new brakes", "a cat flap", "a kite", "oil paints", "a hammock"}
	small := []string{"The office coffee machine broke again.", "Worked late, the traffic was awful.", "Long day at work, nothing new."}
	for s := range 110 {
		text := small[r.IntN(len(small))] + " " + filler(r, 10) + "."
		switch x, ok := told[s]; {
		case ok:
			text = x
		case s%3 == 0:
			text = fmt.Sprintf("Bought %s for the flat, it was on offer.", things[r.IntN(len(things))])
		}
		msgs := []Message{msg("user", text), msg("assistant", "Noted. "+filler(r, 20)+".")}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, at.Add(time.Duration(s)*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := e.Prepare(Request{Key: Key{Tenant: k.Tenant, Context: k.Context, Thread: "q"}, Messages: []Message{msg("user", "Which cities have I been to for work?")}, Budget: 1200, PerMessage: 4, TailPercent: 20, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range told {
		if !strings.Contains(w.Memory, s) {
			t.Errorf("%q is not in the window:\n%s", s, w.Memory)
		}
	}
}

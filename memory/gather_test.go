package memory

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
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

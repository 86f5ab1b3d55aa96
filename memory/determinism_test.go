package memory

import (
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/lens"
)

// TestBlockScoresAreDeterministic: a block's score sums the shares of
// several matches (its own, its neighbours', its exchange's), and a
// floating-point sum depends on its order. Summed in Go's (random) map
// order, two assemblies of one request could rank near-ties differently
// and a dry run show another window than the live request gets. The same
// question must score every block to the same bits, every time.
func TestBlockScoresAreDeterministic(t *testing.T) {
	e := openWith(t, "", nil, 4)
	k := Key{Tenant: "p", Context: "det"}
	// Made-up words, each in a few per cent of the blocks: many blocks
	// match several of the question's words, and their neighbours and
	// replies take shares of each.
	r := rand.New(rand.NewPCG(5, 9))
	vocab := make([]string, 300)
	for i := range vocab {
		w := make([]byte, 7)
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(w)
	}
	text := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = vocab[r.IntN(len(vocab))]
			if r.IntN(10) == 0 {
				ws[i] += "."
			}
		}
		return strings.Join(ws, " ")
	}
	var conv []Message
	for range 80 {
		conv = append(conv, msg("user", text(40+r.IntN(200))), msg("assistant", text(40+r.IntN(200))))
	}
	if _, err := e.Import(k, conv, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	c, err := e.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.mu.Unlock()
	none := func(int) bool { return false }
	for i := range 6 {
		question := "What about " + text(3+2*i) + "?"
		if i%2 == 1 {
			question = "What did you suggest about " + text(3+i) + "?"
		}
		q := lens.Query(question, 1)
		want := e.scoreBlocks(c, q, none, newAsking(question))
		if len(want) == 0 {
			t.Fatalf("%q matches nothing: the test checks nothing", question)
		}
		for run := range 50 {
			if got := e.scoreBlocks(c, q, none, newAsking(question)); !maps.Equal(got, want) {
				for b, s := range want {
					if got[b] != s {
						t.Fatalf("%q, run %d: block %d scores %v, first run %v", question, run+2, b, got[b], s)
					}
				}
				t.Fatalf("%q, run %d: other blocks scored", question, run+2)
			}
		}
	}
}

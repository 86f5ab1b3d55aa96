package native

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/tokens"
)

// The engine prices a window as the sum of its pieces, each counted alone;
// for every real vocabulary, the prompt it renders, counted whole, stays
// within the budget. The history mixes prose, codes and the tokenizer test
// vectors (exotic scripts, emoji, runs of spaces).
func TestWindowFitsExactCounts(t *testing.T) {
	lib := openTestLib(t)
	for _, gguf := range vocabFiles(t) {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(gguf), "ggml-vocab-"), ".gguf")
		t.Run(name, func(t *testing.T) {
			tok, err := lib.LoadVocab(gguf)
			if err != nil {
				t.Fatal(err)
			}
			defer tok.Close()
			var pieces []string
			for _, c := range readVocabCases(t, gguf) {
				if strings.TrimSpace(c.input) != "" {
					pieces = append(pieces, c.input)
				}
			}
			pieces = append(pieces, strings.Split(strings.TrimSpace(proseSample), "\n")...)
			for _, render := range []string{memory.RenderOutline, memory.RenderChronological} {
				checkWindowsFit(t, tok, render, pieces)
			}
		})
	}
}

func checkWindowsFit(t *testing.T, tok tokens.Counter, render string, pieces []string) {
	t.Helper()
	at := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	e, err := memory.Open(memory.Options{Counter: tok, Render: render, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := rand.New(rand.NewPCG(7, 7))
	text := func() string {
		var sb strings.Builder
		for i := 0; i < 1+r.IntN(5); i++ {
			sb.WriteString(pieces[r.IntN(len(pieces))])
			sb.WriteString(" ")
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&sb, "The code is QX-%04d-%c.", r.IntN(10000), 'A'+r.IntN(26))
		}
		return strings.TrimSpace(sb.String())
	}
	k := memory.Key{Tenant: "t", Context: "c"}
	var old []memory.Message
	for i := 0; i < 300; i++ {
		old = append(old, memory.Message{Role: "user", Text: text()}, memory.Message{Role: "assistant", Text: text()})
	}
	if _, err := e.Import(k, old, at); err != nil {
		t.Fatal(err)
	}
	conv := []memory.Message{{Role: "system", Text: "You are helpful."}}
	for turn := 0; turn < 40; turn++ {
		conv = append(conv, memory.Message{Role: "user", Text: text()})
		budget := 300 + r.IntN(4000)
		req := memory.Request{Key: k, Messages: conv, Budget: budget, PerMessage: 5, TailPercent: 40}
		w, err := e.Prepare(req)
		if err == memory.ErrTooLong {
			conv = conv[:1]
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := 0; i < w.Leading; i++ {
			n += 5 + tok.Count(conv[i].Text)
		}
		if w.Memory != "" {
			n += 5 + tok.Count(w.Memory)
		}
		for i := w.TailFrom; i < len(conv); i++ {
			n += 5 + tok.Count(conv[i].Text)
		}
		if n > budget || n > w.Tokens {
			t.Fatalf("%s, turn %d: the prompt counts %d tokens whole; budget %d, the engine priced it at %d", render, turn, n, budget, w.Tokens)
		}
		conv = append(conv, memory.Message{Role: "assistant", Text: text()})
	}
}

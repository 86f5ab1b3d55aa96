package memory

import (
	"context"
	"hash/fnv"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/lens"
)

// conceptEmbedder is a test embedder that knows a few synonyms: words of a
// concept map to one dimension, other words to hashed dimensions.
type conceptEmbedder struct{ calls int }

var concepts = map[string]int{"sofa": 0, "couch": 0, "settee": 0, "endocrinologist": 1, "hormone": 1}

func (f *conceptEmbedder) Dim() int { return 64 }

func (f *conceptEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	f.calls++
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, 64)
		for _, w := range lens.Terms(t) {
			if d, ok := concepts[w]; ok {
				v[d] += 3 // a concept dominates, as meaning does in real embeddings
				continue
			}
			h := fnv.New32a()
			h.Write([]byte(w))
			v[2+int(h.Sum32()%62)]++
		}
		var n float64
		for _, x := range v {
			n += float64(x * x)
		}
		if n > 0 {
			for j := range v {
				v[j] /= float32(math.Sqrt(n))
			}
		}
		out[i] = v
	}
	return out, nil
}

func TestSemanticLensBridgesLexicalGap(t *testing.T) {
	dir := t.TempDir()
	emb := &conceptEmbedder{}
	e, err := Open(Options{Dir: dir, Now: fixedClock(), Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Tenant: "t", Context: "c"}
	conv := conversation(120, 11)
	conv[9] = msg("user", "The sofa we purchased last weekend is teal.")
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitEmbedded(ctx, k); err != nil {
		t.Fatal(err)
	}
	ask := Request{Key: k, Messages: []Message{msg("user", "Which shade is the couch I bought recently?")}, Budget: 1500, PerMessage: 4, TailPercent: 30, DryRun: true}
	w, err := e.Prepare(ask)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "is teal") {
		t.Fatalf("semantic match missing:\n%s", w.Memory)
	}
	e.Close()

	// Without the embedder the same question misses (the test is not vacuous).
	plain, err := Open(Options{Dir: dir, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	w, err = plain.Prepare(ask)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(w.Memory, "is teal") {
		t.Fatal("the lexical window already holds the block: the semantic check proves nothing")
	}
	plain.Close()

	// Vectors persist: a restarted engine embeds nothing again.
	emb2 := &conceptEmbedder{}
	e2, err := Open(Options{Dir: dir, Now: fixedClock(), Embedder: emb2})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if err := e2.WaitEmbedded(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Prepare(ask); err != nil {
		t.Fatal(err)
	}
	if emb2.calls != 1 { // the question only
		t.Fatalf("restart re-embedded blocks: %d calls", emb2.calls)
	}
}

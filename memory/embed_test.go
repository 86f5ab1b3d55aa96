package memory

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/qvec"
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
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Embedder: emb})
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
	plain, err := testOpen(t, Options{Dir: dir, Now: fixedClock()})
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
	e2, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Embedder: emb2})
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

// hashEmbedder gives every text a pseudo-random direction: most blocks end
// up above the similarity floor, as with a weak embedding model.
type hashEmbedder struct{}

func (hashEmbedder) Dim() int { return 16 }

func (hashEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		h := fnv.New64a()
		h.Write([]byte(t))
		r := rand.New(rand.NewPCG(h.Sum64(), 1))
		v := make([]float32, 16)
		for j := range v {
			v[j] = float32(r.Float64()) + 0.5 // all positive: cosines well above the floor
		}
		out[i] = v
	}
	return out, nil
}

// The semantic scores go to exactly the semanticTop most similar blocks
// (ties to the newest), whatever the order the vectors are scanned in.
func TestSemanticScoresKeepTopBlocks(t *testing.T) {
	e, err := testOpen(t, Options{Now: fixedClock(), Embedder: hashEmbedder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "t", Context: "c"}
	if _, err := e.Prepare(Request{Key: k, Messages: conversation(60, 5), Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitEmbedded(ctx, k); err != nil {
		t.Fatal(err)
	}
	c, _, err := e.get(k, false)
	if err != nil {
		t.Fatal(err)
	}
	question := "Which shade is the couch I bought recently?"
	got := e.semanticScores(c, question, func(int) bool { return false })
	vs, _ := hashEmbedder{}.Embed(ctx, []string{question})
	q := qvec.Quantize(vs[0])
	type hit struct {
		b   int
		cos float32
	}
	var all []hit
	for b, v := range c.vecs {
		if cos := qvec.Cosine(q, v); cos > semanticMin {
			all = append(all, hit{b, cos})
		}
	}
	if len(all) <= semanticTop {
		t.Fatalf("only %d blocks above the floor: the test proves nothing", len(all))
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].cos != all[j].cos {
			return all[i].cos > all[j].cos
		}
		return all[i].b > all[j].b
	})
	if len(got) != semanticTop {
		t.Fatalf("%d blocks scored, want %d", len(got), semanticTop)
	}
	for _, h := range all[:semanticTop] {
		if _, ok := got[h.b]; !ok {
			t.Fatalf("block %d (cosine %.3f) is among the %d most similar but got no score", h.b, h.cos, semanticTop)
		}
	}
}

package native

import (
	"context"
	"math"
	"testing"
)

var embedTexts = []string{
	"Once upon a time there was a little girl named Lily.",
	"The dog ran to the park.",
	"",
	"She loved to play outside with her friends and her big red ball, every single day of the summer.",
	"Tom",
	"Once upon a time there was a little girl named Lily.",
}

func loadTestEmbedder(t testing.TB, opts EmbedderOptions) *Embedder {
	t.Helper()
	path := sharedFile(t, "models/stories260K.gguf")
	lib := openTestLib(t)
	if opts.Threads == 0 {
		opts.Threads = 1 // see newTestContext
	}
	e, err := lib.LoadEmbedder(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestEmbedBatchedMatchesSingle(t *testing.T) {
	e := loadTestEmbedder(t, EmbedderOptions{})
	if e.Dim() != 64 {
		t.Fatalf("Dim() = %d, want 64", e.Dim())
	}
	ctx := context.Background()
	batched, err := e.Embed(ctx, embedTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range embedTexts {
		one, err := e.EmbedOne(ctx, text)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(one, batched[i]); d > 1e-4 {
			t.Errorf("text %d: batched and single differ by %g", i, d)
		}
		norm := l2(one)
		if text != "" && math.Abs(norm-1) > 1e-5 {
			t.Errorf("text %d: norm %g", i, norm)
		}
	}
	if d := maxDiff(batched[0], batched[5]); d > 1e-6 {
		t.Errorf("same text in one batch differs by %g", d)
	}
	if cos := dot(batched[0], batched[1]); cos > 0.9999 {
		t.Errorf("different texts give the same vector (cos %g)", cos)
	}
}

func TestEmbedSmallBatches(t *testing.T) {
	// Tiny limits force many decodes and truncation.
	e := loadTestEmbedder(t, EmbedderOptions{BatchTokens: 32, MaxSequences: 2, MaxTokens: 16})
	ref := loadTestEmbedder(t, EmbedderOptions{MaxTokens: 16})
	ctx := context.Background()
	got, err := e.Embed(ctx, embedTexts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Embed(ctx, embedTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := maxDiff(got[i], want[i]); d > 1e-4 {
			t.Errorf("text %d differs by %g", i, d)
		}
	}
}

func TestEmbedClosed(t *testing.T) {
	e := loadTestEmbedder(t, EmbedderOptions{})
	e.Close()
	if _, err := e.Embed(context.Background(), []string{"x"}); err != ErrClosed {
		t.Fatalf("Embed after Close: %v", err)
	}
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func l2(v []float32) float64 { return math.Sqrt(dot(v, v)) }

func dot(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

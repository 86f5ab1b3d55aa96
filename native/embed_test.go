package native

import (
	"context"
	"math"
	"strconv"
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
	tol := embedTolerance(t, e, embedTexts)
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
		if d := maxDiff(one, batched[i]); d > tol {
			t.Errorf("text %d: batched and single differ by %g (tolerance %g)", i, d, tol)
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
	tol := embedTolerance(t, ref, embedTexts)
	for i := range want {
		if d := maxDiff(got[i], want[i]); d > tol {
			t.Errorf("text %d differs by %g (tolerance %g)", i, d, tol)
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

// embedTolerance is how far two computations of one unit-length embedding
// may differ when only the order of float32 additions changes: batched and
// single decodes take different matmul kernels, and AVX2 and AVX-512 reduce
// in 8 or 16 lanes. Reordering a length-n float32 sum moves it by up to
// about n·u of the magnitudes summed (u = 2^-24, the unit roundoff), twice
// that for the difference of two orders. Each layer sums over the
// embedding width twice (attention in and out), over the feed-forward width
// and over the tokens attended to; RMS norms keep activations at unit scale,
// so relative errors add up layer after layer, and the final L2
// normalization maps a relative error onto the components (all below 1).
// The 1e-4 constant this replaces, half of it for stories260K, failed on an
// AVX2-only AMD EPYC, where batched and single differed by 1.16e-4.
func embedTolerance(t *testing.T, e *Embedder, texts []string) float64 {
	t.Helper()
	const u = 1.0 / (1 << 24)
	arch := modelMeta(t, e, "general.architecture")
	layers := metaInt(t, e, arch+".block_count")
	width := metaInt(t, e, arch+".embedding_length")
	ffn := metaInt(t, e, arch+".feed_forward_length")
	attended := 0
	for _, text := range texts {
		toks, err := e.lib.tokenize(e.vocab, text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		attended = max(attended, min(len(toks), e.MaxTokens()))
	}
	tol := 2 * float64(layers*(2*width+ffn+attended)) * u
	t.Logf("tolerance %.3g: %d layers, sums over %d, %d and %d terms", tol, layers, width, ffn, attended)
	return tol
}

// modelMeta reads a GGUF metadata value of the embedder's model.
func modelMeta(t *testing.T, e *Embedder, key string) string {
	t.Helper()
	var buf [128]byte
	n := e.lib.fn.modelMetaValStr(e.model, key, &buf[0], uintptr(len(buf)))
	if n < 0 {
		t.Fatalf("model metadata %s missing", key)
	}
	return string(buf[:min(int(n), len(buf)-1)])
}

func metaInt(t *testing.T, e *Embedder, key string) int {
	t.Helper()
	v, err := strconv.Atoi(modelMeta(t, e, key))
	if err != nil || v <= 0 {
		t.Fatalf("model metadata %s: %v", key, err)
	}
	return v
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

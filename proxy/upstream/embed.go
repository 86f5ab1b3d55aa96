package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory/qvec"
)

// Embedder computes embeddings with an OpenAI-compatible POST
// /v1/embeddings endpoint: the upstream's own, llama.cpp's llama-server
// started with --embeddings (and --pooling mean for models without a
// pooling of their own), vLLM, Hugging Face TEI or a cloud. It implements
// memory.Embedder: vectors come back L2-normalized, in the order of the
// texts, at most MaxBatch texts to a request.
//
// An input the server refuses as too long (llama.cpp's "too large to
// process" or exceed_context_size_error, OpenAI's and vLLM's "maximum
// context length") is split at whitespace into halves until each part is
// accepted, and its vector is the mean of its parts' weighted by their
// length, normalized: the mean pooling of the whole, up to the parts'
// boundaries. The length that was refused is remembered, so that later
// inputs as long are split before they are sent. It is safe for concurrent
// use.
type Embedder struct {
	c     *Client
	model string
	batch int

	// dim is the vectors' length, 0 until the first answer.
	dim atomic.Int64
	// mu guards limit.
	mu sync.Mutex
	// limit is the shortest input (in bytes) the server refused as too
	// long; 0 when none was.
	limit int
}

// EmbedderOptions configure an Embedder.
type EmbedderOptions struct {
	// Model is the "model" field of each request; empty leaves it out
	// (llama.cpp serves its one model whatever the field says).
	Model string
	// MaxBatch bounds the texts of one request; 0 means DefaultEmbedBatch.
	MaxBatch int
}

// DefaultEmbedBatch is EmbedderOptions.MaxBatch's default.
const DefaultEmbedBatch = 64

// minSplitBytes is the shortest part a too-long input is split into; a
// part this short that is still refused fails the call.
const minSplitBytes = 16

// NewEmbedder returns an Embedder posting to c's /v1/embeddings.
func NewEmbedder(c *Client, o EmbedderOptions) *Embedder {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultEmbedBatch
	}
	return &Embedder{c: c, model: o.Model, batch: o.MaxBatch}
}

// EmbeddingsBaseURL turns the URL of an embeddings endpoint, as users
// write it (a server root, its /v1, or /v1/embeddings itself), into the
// server root that New takes.
func EmbeddingsBaseURL(u string) string {
	u = strings.TrimRight(u, "/")
	u = strings.TrimSuffix(u, "/embeddings")
	u = strings.TrimRight(u, "/")
	return strings.TrimSuffix(u, "/v1")
}

// Dim implements memory.Embedder: the vectors' length, 0 until the server
// answered once.
func (e *Embedder) Dim() int { return int(e.dim.Load()) }

// Embed implements memory.Embedder: one vector per text, L2-normalized.
// Empty texts get a zero vector without a request.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	var idx []int // texts to send, by position
	for i, t := range texts {
		if strings.TrimSpace(t) != "" {
			idx = append(idx, i)
		}
	}
	for len(idx) > 0 {
		n := min(len(idx), e.batch)
		if err := e.embedInto(ctx, texts, idx[:n], out); err != nil {
			return nil, err
		}
		idx = idx[n:]
	}
	if d := e.Dim(); d > 0 {
		for i := range out {
			if out[i] == nil {
				out[i] = make([]float32, d)
			}
		}
	}
	return out, nil
}

// embedInto embeds texts[idx] into out: in one request, or, when the server
// refuses one of them as too long, one by one, splitting the refused ones.
func (e *Embedder) embedInto(ctx context.Context, texts []string, idx []int, out [][]float32) error {
	var batch []string
	var whole []int // positions sent as they are
	for _, i := range idx {
		if e.tooLong(texts[i]) {
			v, err := e.embedSplit(ctx, texts[i])
			if err != nil {
				return err
			}
			out[i] = v
			continue
		}
		batch, whole = append(batch, texts[i]), append(whole, i)
	}
	if len(batch) == 0 {
		return nil
	}
	vs, err := e.post(ctx, batch)
	if err == nil {
		for k, i := range whole {
			out[i] = vs[k]
		}
		return nil
	}
	if !errors.Is(err, errInputTooLong) {
		return err
	}
	// One of them is too long, which one the server does not say.
	for _, i := range whole {
		v, err := e.embedOne(ctx, texts[i])
		if err != nil {
			return err
		}
		out[i] = v
	}
	return nil
}

// embedOne embeds one text, splitting it when the server refuses it (or
// refused one as long).
func (e *Embedder) embedOne(ctx context.Context, text string) ([]float32, error) {
	if e.tooLong(text) {
		return e.embedSplit(ctx, text)
	}
	vs, err := e.post(ctx, []string{text})
	if err == nil {
		return vs[0], nil
	}
	if !errors.Is(err, errInputTooLong) {
		return nil, err
	}
	e.refused(len(text))
	return e.embedSplit(ctx, text)
}

// embedSplit embeds a too-long text as the length-weighted mean of its two
// halves' vectors (each embedded the same way), normalized.
func (e *Embedder) embedSplit(ctx context.Context, text string) ([]float32, error) {
	if len(text) < 2*minSplitBytes {
		return nil, fmt.Errorf("embeddings: the server refuses even %d bytes of input as too long", len(text))
	}
	a, b := splitHalf(text)
	va, err := e.embedOne(ctx, a)
	if err != nil {
		return nil, err
	}
	vb, err := e.embedOne(ctx, b)
	if err != nil {
		return nil, err
	}
	if len(va) != len(vb) {
		return nil, fmt.Errorf("embeddings: parts of one input came back with %d and %d dimensions", len(va), len(vb))
	}
	wa, wb := float32(len(a)), float32(len(b))
	v := make([]float32, len(va))
	for i := range v {
		v[i] = wa*va[i] + wb*vb[i]
	}
	qvec.Normalize(v)
	return v, nil
}

// splitHalf cuts text (at least 2 bytes) into two non-empty parts near its
// middle: at the whitespace nearest to it, else at the nearest rune start,
// else (no rune starts: invalid UTF-8) in the middle.
func splitHalf(text string) (string, string) {
	mid := len(text) / 2
	cut := nearest(len(text), mid, func(i int) bool { return unicode.IsSpace(rune(text[i])) })
	if cut < 0 {
		cut = nearest(len(text), mid, func(i int) bool { return utf8.RuneStart(text[i]) })
	}
	if cut < 0 {
		cut = mid
	}
	return text[:cut], text[cut:]
}

// nearest returns the i in (0, n) closest to mid with ok(i), or -1.
func nearest(n, mid int, ok func(int) bool) int {
	for d := 0; d < n; d++ {
		for _, i := range [2]int{mid - d, mid + d} {
			if i > 0 && i < n && ok(i) {
				return i
			}
		}
	}
	return -1
}

// tooLong reports whether text is at least as long as an input the server
// refused.
func (e *Embedder) tooLong(text string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.limit > 0 && len(text) >= e.limit
}

// refused remembers that an input of n bytes was too long.
func (e *Embedder) refused(n int) {
	e.mu.Lock()
	if e.limit == 0 || n < e.limit {
		e.limit = n
	}
	e.mu.Unlock()
}

// errInputTooLong marks an answer refusing an input as too long.
var errInputTooLong = errors.New("embeddings: input too long for the server")

// post sends one /v1/embeddings request and returns the normalized vectors
// in the order of texts.
func (e *Embedder) post(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(struct {
		Model          string   `json:"model,omitempty"`
		Input          []string `json:"input"`
		EncodingFormat string   `json:"encoding_format"`
	}{e.model, texts, "float"})
	if err != nil {
		return nil, fmt.Errorf("embeddings: encode request: %w", err)
	}
	status, data, err := e.c.call(ctx, http.MethodPost, "/v1/embeddings", body)
	if err != nil {
		return nil, fmt.Errorf("embeddings: %w", err)
	}
	if status != http.StatusOK {
		if IsContextLengthError(status, data) {
			return nil, fmt.Errorf("%w: %w", errInputTooLong, statusError(http.MethodPost, "/v1/embeddings", status, data))
		}
		return nil, fmt.Errorf("embeddings: %w", statusError(http.MethodPost, "/v1/embeddings", status, data))
	}
	items := gjson.GetBytes(data, "data")
	if !items.IsArray() {
		return nil, fmt.Errorf("embeddings: no data array in %q", snippet(data, 120))
	}
	type item struct {
		index int
		vec   []float32
	}
	var got []item
	var bad error
	items.ForEach(func(_, it gjson.Result) bool {
		emb := it.Get("embedding")
		if !emb.IsArray() {
			bad = fmt.Errorf("embeddings: an item has no embedding array (base64 answers are not read)")
			return false
		}
		// llama.cpp with --pooling none answers one vector per token.
		if emb.Get("0").IsArray() {
			bad = fmt.Errorf("embeddings: the server returns one vector per token; start llama-server with --pooling mean")
			return false
		}
		v := make([]float32, 0, 1024)
		emb.ForEach(func(_, x gjson.Result) bool {
			v = append(v, float32(x.Float()))
			return true
		})
		got = append(got, item{int(it.Get("index").Int()), v})
		return true
	})
	if bad != nil {
		return nil, bad
	}
	if len(got) != len(texts) {
		return nil, fmt.Errorf("embeddings: %d vectors for %d inputs", len(got), len(texts))
	}
	sort.SliceStable(got, func(a, b int) bool { return got[a].index < got[b].index })
	out := make([][]float32, len(got))
	for i, it := range got {
		if it.index != i {
			return nil, fmt.Errorf("embeddings: answer indexes do not match the inputs")
		}
		if len(it.vec) == 0 {
			return nil, fmt.Errorf("embeddings: empty vector for input %d", i)
		}
		if d := int(e.dim.Load()); d != 0 && d != len(it.vec) {
			return nil, fmt.Errorf("embeddings: vector of %d dimensions, earlier ones had %d", len(it.vec), d)
		}
		e.dim.CompareAndSwap(0, int64(len(it.vec)))
		qvec.Normalize(it.vec)
		out[i] = it.vec
	}
	return out, nil
}

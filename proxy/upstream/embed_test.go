package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// embedServer fakes an OpenAI-compatible /v1/embeddings: the vector of a
// text counts its letters a..h (not normalized, so that the client's
// normalization shows), answered in reverse order with their indexes. An
// input longer than limit bytes is refused as llama.cpp does ("too large
// to process", HTTP 500).
type embedServer struct {
	*httptest.Server
	limit int

	mu       sync.Mutex
	requests [][]string // inputs of each request
	auth     []string   // Authorization header of each request
	models   []string   // model field of each request
}

func newEmbedServer(t *testing.T, limit int) *embedServer {
	es := &embedServer{limit: limit}
	es.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" {
			http.NotFound(w, r)
			return
		}
		var req struct {
			Model          string   `json:"model"`
			Input          []string `json:"input"`
			EncodingFormat string   `json:"encoding_format"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.EncodingFormat != "float" {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"code":400,"message":"bad request","type":"invalid_request_error"}}`)
			return
		}
		es.mu.Lock()
		es.requests = append(es.requests, req.Input)
		es.auth = append(es.auth, r.Header.Get("Authorization"))
		es.models = append(es.models, req.Model)
		es.mu.Unlock()
		for _, in := range req.Input {
			if es.limit > 0 && len(in) > es.limit {
				w.WriteHeader(500)
				fmt.Fprintf(w, `{"error":{"code":500,"message":"input (%d tokens) is too large to process. increase the physical batch size (current batch size: %d)","type":"server_error"}}`, len(in), es.limit)
				return
			}
		}
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		}
		var data []item
		for i := len(req.Input) - 1; i >= 0; i-- {
			data = append(data, item{"embedding", i, letterVector(req.Input[i])})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model})
	}))
	t.Cleanup(es.Close)
	return es
}

// letterVector counts the letters a..h of s (unnormalized).
func letterVector(s string) []float64 {
	v := make([]float64, 8)
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'h' {
			v[r-'a']++
		}
	}
	return v
}

func unit(v []float64) []float32 {
	var n float64
	for _, x := range v {
		n += x * x
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x / math.Sqrt(n))
	}
	return out
}

func near(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

// TestEmbedder: batches of at most MaxBatch texts, vectors in the texts'
// order and normalized, the key and model sent, empty texts answered
// without a request.
func TestEmbedder(t *testing.T) {
	es := newEmbedServer(t, 0)
	c := newClient(t, Options{BaseURL: EmbeddingsBaseURL(es.URL + "/v1/embeddings"), APIKey: "sk-emb"})
	e := NewEmbedder(c, EmbedderOptions{Model: "bge-small", MaxBatch: 3})
	if e.Dim() != 0 {
		t.Fatalf("Dim before any answer: %d", e.Dim())
	}
	texts := []string{"abc", "", "hhh", "bad cafe", "gag", "deed", "ace"}
	vs, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		want := make([]float32, 8)
		if s != "" {
			want = unit(letterVector(s))
		}
		if !near(vs[i], want, 1e-6) {
			t.Errorf("vector %d (%q) = %v, want %v", i, s, vs[i], want)
		}
	}
	if e.Dim() != 8 {
		t.Errorf("Dim %d, want 8", e.Dim())
	}
	if len(es.requests) != 2 || len(es.requests[0]) != 3 || len(es.requests[1]) != 3 {
		t.Errorf("requests %v, want two of three texts (the empty one not sent)", es.requests)
	}
	for i := range es.auth {
		if es.auth[i] != "Bearer sk-emb" || es.models[i] != "bge-small" {
			t.Errorf("request %d: Authorization %q, model %q", i, es.auth[i], es.models[i])
		}
	}
}

// TestEmbedderSplitsTooLongInputs: an input the server refuses as too long
// is embedded as the length-weighted mean of parts it accepts; the length
// is remembered, so the next long input is split before it is sent.
func TestEmbedderSplitsTooLongInputs(t *testing.T) {
	es := newEmbedServer(t, 40)
	c := newClient(t, Options{BaseURL: es.URL})
	e := NewEmbedder(c, EmbedderOptions{})
	long := strings.Repeat("ab cd ", 10) + strings.Repeat("ef gh ", 10) // 120 bytes
	vs, err := e.Embed(context.Background(), []string{"ace", long, "bed"})
	if err != nil {
		t.Fatal(err)
	}
	if !near(vs[0], unit(letterVector("ace")), 1e-6) || !near(vs[2], unit(letterVector("bed")), 1e-6) {
		t.Errorf("short inputs beside a long one: %v %v", vs[0], vs[2])
	}
	// Every letter of the long text weighs the same in its parts' mean.
	if !near(vs[1], unit(letterVector(long)), 0.02) {
		t.Errorf("long input: %v, want about %v", vs[1], unit(letterVector(long)))
	}
	n := len(es.requests)
	if _, err := e.Embed(context.Background(), []string{long + "abc"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range es.requests[n:] {
		for _, in := range r {
			if len(in) > 40 {
				t.Errorf("an input of %d bytes was sent after one of %d was refused", len(in), 120)
			}
		}
	}
	// A server that refuses everything fails the call, after a few tries.
	es.limit = 1
	e = NewEmbedder(c, EmbedderOptions{})
	if _, err := e.Embed(context.Background(), []string{long}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("err = %v, want a too-long error", err)
	}
}

// TestEmbedderErrors: other failures are errors naming the upstream's
// message; malformed answers are errors, not vectors.
func TestEmbedderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"auth", `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}`, 401, "Invalid API Key"},
		{"base64", `{"data":[{"index":0,"embedding":"AAAA"}]}`, 200, "no embedding array"},
		{"per token", `{"data":[{"index":0,"embedding":[[0.1,0.2],[0.3,0.4]]}]}`, 200, "--pooling mean"},
		{"count", `{"data":[]}`, 200, "0 vectors for 1 inputs"},
		{"no data", `{"object":"list"}`, 200, "no data array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			e := NewEmbedder(newClient(t, Options{BaseURL: srv.URL}), EmbedderOptions{})
			_, err := e.Embed(context.Background(), []string{"x y"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if errors.Is(err, errInputTooLong) {
				t.Errorf("%v taken for a too-long input", err)
			}
		})
	}
}

func TestEmbeddingsBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:8080":                        "http://h:8080",
		"http://h:8080/":                       "http://h:8080",
		"http://h:8080/v1":                     "http://h:8080",
		"http://h:8080/v1/":                    "http://h:8080",
		"http://h:8080/v1/embeddings":          "http://h:8080",
		"https://api.x.com/llm/v1/embeddings/": "https://api.x.com/llm",
	} {
		if got := EmbeddingsBaseURL(in); got != want {
			t.Errorf("EmbeddingsBaseURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSplitHalf(f *testing.F) {
	f.Add("hello world")
	f.Add("日本語のテキスト")
	f.Add("a")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) < 2 {
			return
		}
		a, b := splitHalf(s)
		if a+b != s || a == "" || b == "" {
			t.Fatalf("splitHalf(%q) = %q, %q", s, a, b)
		}
	})
}

// TestEmbedderFakellama: against the fakellama fixture's /v1/embeddings,
// the vectors are the fixture's own (fakellama.Embedding), in order.
func TestEmbedderFakellama(t *testing.T) {
	fake, err := fakellama.Start(fakellama.Options{EmbeddingDim: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	e := NewEmbedder(newClient(t, Options{BaseURL: fake.URL()}), EmbedderOptions{MaxBatch: 4})
	texts := []string{"the cat sat on the mat", "stock prices fell", "My locker code is ZX-4471-QK.", "the cat sat", "a b c d e"}
	vs, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		want := fakellama.Embedding(s, 32)
		for j := range want {
			if math.Abs(float64(vs[i][j])-want[j]) > 1e-6 {
				t.Fatalf("text %d element %d: %v, want %v", i, j, vs[i][j], want[j])
			}
		}
	}
}

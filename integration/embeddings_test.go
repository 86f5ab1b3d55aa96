package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// embeddingInputs returns the inputs of every /v1/embeddings request the
// hop relayed, request by request.
func embeddingInputs(t *testing.T, hop *upstreamHop) [][]string {
	t.Helper()
	var out [][]string
	for _, r := range hop.requests("/v1/embeddings") {
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.Unmarshal(r.body, &req); err != nil {
			t.Fatalf("embeddings request body %q: %v", r.body, err)
		}
		if req.Model != "fake-embed" || r.auth != "Bearer sk-embed" {
			t.Errorf("embeddings request with model %q, Authorization %q", req.Model, r.auth)
		}
		out = append(out, req.Input)
	}
	return out
}

// TestEmbeddingsURL: with embeddings.url, the real binary embeds every
// stored block in the background through an OpenAI-compatible
// /v1/embeddings (here fakellama's, a server of its own), in batches, with
// the configured model and key, and embeds the question when it assembles
// a window; chat never waits for it.
func TestEmbeddingsURL(t *testing.T) {
	chat := newFake(t, fakellama.Options{NCtx: 4096})
	emb := newFake(t, fakellama.Options{NCtx: 4096, EmbeddingDim: 48})
	hop := startUpstreamHop(t, emb.URL())
	cfg := fmt.Sprintf("embeddings:\n  url: %s/v1/embeddings\n  model: fake-embed\n  api_key: sk-embed\n", hop.url)
	p := startProxy(t, proxyOptions{Upstream: chat.URL(), Config: cfg})
	talk := newTalker(3)
	hdr := map[string]string{"X-MegaContext-Id": "emb"}
	var msgs []msg
	for i := 0; i < 6; i++ {
		msgs = append(msgs, msg{Role: "user", Content: talk.message()})
		res := p.mustChat(t, chatBody(t, msgs, nil), hdr)
		msgs = append(msgs, msg{Role: "assistant", Content: res.Content})
	}
	// Every block gets a vector (the admin stats count them), sent in the
	// background batches: each reply (which is never a question) is covered
	// by the inputs of the requests.
	var got [][]string
	waitFor(t, "every block embedded", func() bool {
		r := p.mustDo(t, "GET", "/megacontext/v1/contexts/emb", nil, nil)
		blocks, embedded := gjson.GetBytes(r.Body, "blocks").Int(), gjson.GetBytes(r.Body, "embedded_blocks").Int()
		return blocks > 0 && embedded == blocks
	})
	got = embeddingInputs(t, hop)
	for _, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		rest := m.Content
		for _, in := range got {
			for _, x := range in {
				rest = strings.Replace(rest, x, "", 1)
			}
		}
		if strings.TrimSpace(rest) != "" {
			t.Errorf("reply %q: %q was never sent to be embedded", m.Content, rest)
		}
	}
	questions := 0
	for _, in := range got {
		if len(in) > 8 {
			t.Errorf("a batch of %d inputs; the engine sends at most 8", len(in))
		}
		for _, m := range msgs {
			if m.Role == "user" && len(in) == 1 && in[0] == m.Content {
				questions++
			}
		}
	}
	if questions == 0 {
		t.Errorf("no question was embedded whole (the lens embeds the last user message)")
	}
	if len(chat.Requests()) == 0 {
		t.Fatal("no chat request reached the chat upstream")
	}
	for _, r := range chat.Requests() {
		if r.Path == "/v1/embeddings" {
			t.Errorf("an embeddings request went to the chat upstream")
		}
	}
}

// quantTolerance is how far apart two stored (int8) vectors of the same
// float vector may be after they come back: each element's round trip is
// off by at most half its vector's scale, plus the float noise between the
// two builds of llama.cpp (the native layer's and the server's; measured
// below 2e-4 per element with stories260K, 64 dimensions).
func quantTolerance(a, b qvec.Vector) float64 { return float64(a.Scale+b.Scale)/2 + 1e-3 }

// TestEmbeddingsMatchNative: the vectors MegaContext stores for a text are
// the same whether stories260K.gguf embeds it in-process (native layer)
// or llama.cpp's own server does (--embeddings --pooling mean) behind
// embeddings.url, within what int8 storage allows.
func TestEmbeddingsMatchNative(t *testing.T) {
	lib, err := native.Open(nativeLibDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1, Embeddings: true})
	local, err := lib.LoadEmbedder(ls.ModelPath(), native.EmbedderOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	c, err := upstream.New(upstream.Options{BaseURL: ls.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	remote := upstream.NewEmbedder(c, upstream.EmbedderOptions{})
	talk := newTalker(5)
	texts := []string{storyPrompt, "Lily found a big red ball in the park.", "My locker code is ZX-4471-QK."}
	for i := 0; i < 13; i++ {
		texts = append(texts, talk.sentence())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, err := local.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	if remote.Dim() != local.Dim() {
		t.Fatalf("dimensions: %d through the server, %d in-process", remote.Dim(), local.Dim())
	}
	worst := 0.0
	for i := range texts {
		a, b := qvec.Quantize(want[i]), qvec.Quantize(got[i])
		da, db := a.Dequantize(), b.Dequantize()
		tol := quantTolerance(a, b)
		for j := range da {
			d := math.Abs(float64(da[j] - db[j]))
			worst = max(worst, d/tol)
			if d > tol {
				t.Fatalf("text %d, element %d: %v in-process, %v through the server (tolerance %v)", i, j, da[j], db[j], tol)
			}
		}
		if cos := qvec.Cosine(a, b); cos < 0.999 {
			t.Errorf("text %d: stored vectors' cosine %v", i, cos)
		}
	}
	t.Logf("largest difference: %.2f of the tolerance", worst)
}

// TestEmbeddingsRealServer: the real binary with a real llama.cpp chat
// server and a second one serving --embeddings --pooling mean with a small
// batch (-c 128): the embedding server gets the blocks and the questions
// (which at this size it refuses whole and gets in parts), and chat goes on
// as usual.
func TestEmbeddingsRealServer(t *testing.T) {
	chat := startLlamaServer(t, llamaServerOptions{NCtx: 1024, Parallel: 1})
	emb := startLlamaServer(t, llamaServerOptions{NCtx: 128, Parallel: 1, Embeddings: true})
	hop := startUpstreamHop(t, emb.URL())
	p := startProxy(t, proxyOptions{Upstream: chat.URL(), Config: fmt.Sprintf("embeddings:\n  url: %s/v1\n", hop.url)})
	talk := newTalker(9)
	hdr := map[string]string{"X-MegaContext-Id": "emb-real"}
	var msgs []msg
	for i := 0; i < 5; i++ {
		msgs = append(msgs, msg{Role: "user", Content: talk.message() + " " + talk.message()})
		res := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 16}), hdr)
		msgs = append(msgs, msg{Role: "assistant", Content: res.Content})
	}
	seen := 0
	waitFor(t, "embedding requests", func() bool {
		seen += hop.take()["/v1/embeddings"]
		return seen >= 5
	})
	// The long questions were refused whole and embedded in parts: the log
	// says nothing failed.
	if log, _ := os.ReadFile(p.logPath); strings.Contains(string(log), "embedding blocks failed") {
		t.Errorf("embedding failed: %s", log)
	}
	// Straight to the server: a text far over its batch comes back as one
	// unit vector.
	c, err := upstream.New(upstream.Options{BaseURL: emb.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := upstream.NewEmbedder(c, upstream.EmbedderOptions{})
	long := strings.Repeat(talk.sentence()+" ", 30)
	vs, err := e.Embed(context.Background(), []string{long})
	if err != nil {
		t.Fatalf("a %d-byte text: %v", len(long), err)
	}
	var n float64
	for _, x := range vs[0] {
		n += float64(x) * float64(x)
	}
	if math.Abs(n-1) > 1e-4 {
		t.Errorf("the long text's vector has norm² %v", n)
	}
	st, _, _ := emb.post("/v1/embeddings", []byte(fmt.Sprintf(`{"input":[%q]}`, long)))
	if st == http.StatusOK {
		t.Errorf("the server took the long text whole: the split was not exercised")
	}
}

package integration

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Tests of the real binary in front of the real llama.cpp server (see
// llamaserver_test.go): what a look-alike upstream cannot show.

// TestLlamaServerChat: a plain and a streamed chat through the proxy reach
// the real server, come back as OpenAI answers, and are stored.
func TestLlamaServerChat(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1})
	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
	hdr := map[string]string{"X-MegaContext-Id": "real-chat"}
	msgs := []msg{{Role: "user", Content: "Once upon a time there was a little girl named Lily."}}

	res := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 16, "temperature": 0}), hdr)
	if res.Content == "" {
		t.Fatalf("empty answer: %s", res.Body)
	}
	if got := gjson.GetBytes(res.Body, "system_fingerprint").Str; !strings.HasPrefix(got, "b1-de3ff81") {
		t.Errorf("system_fingerprint %q: not the pinned llama.cpp build", got)
	}
	if n := promptTokens(&res.response); n <= 0 {
		t.Errorf("no usage.prompt_tokens in %s", res.Body)
	}
	msgs = append(msgs, msg{Role: "assistant", Content: res.Content}, msg{Role: "user", Content: "What did Lily find?"})
	st := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 16, "temperature": 0, "stream": true}), hdr)
	if !st.Done || st.Content == "" || st.Events < 3 {
		t.Fatalf("stream: done=%v events=%d content=%q", st.Done, st.Events, st.Content)
	}
	p.waitMessages(t, "real-chat", 4)
}

// TestLlamaServerModelAlias: without --alias llama.cpp reports the model's
// file path as model_alias; the proxy names the model after it all the same
// and the request's model field reaches the server unchanged.
func TestLlamaServerModelAlias(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1})
	st, props, err := ls.get("/props")
	if err != nil || st != http.StatusOK {
		t.Fatalf("/props: %d %v", st, err)
	}
	if got := gjson.GetBytes(props, "model_alias").Str; got != ls.ModelPath() {
		t.Errorf("model_alias %q, want the file path %q (llama.cpp's default without --alias)", got, ls.ModelPath())
	}
	if got := gjson.GetBytes(props, "default_generation_settings.n_ctx").Int(); got != 512 {
		t.Errorf("/props n_ctx %d, want 512", got)
	}
	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
	res := p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: "Hello."}}, map[string]any{"max_tokens": 4}), nil)
	if got := gjson.GetBytes(res.Body, "model").Str; got == "" {
		t.Errorf("no model in the answer: %s", res.Body)
	}
	if got := res.Header.Get("X-MegaContext-Budget-Tokens"); got == "" {
		t.Errorf("no budget header")
	} else if n, _ := strconv.Atoi(got); n <= 0 || n > 512 {
		t.Errorf("budget %d tokens for a 512-token context", n)
	}
}

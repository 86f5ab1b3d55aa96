package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestLlamaServerResponses: /v1/responses in front of the real llama.cpp
// server, forwarded to its own /v1/responses (auto: discovery finds it) and
// translated to its chat completions: a plain and a streamed response, a
// chain of 21 turns through previous_response_id, and recall in a new
// conversation of what each API was told.
func TestLlamaServerResponses(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 2048, Parallel: 1})
	for _, mode := range []string{"auto", "translate"} {
		t.Run(mode, func(t *testing.T) {
			p := startProxy(t, proxyOptions{Upstream: ls.URL(), Config: "upstream:\n  responses: " + mode + "\n"})
			if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), "responses_api=true") {
				t.Errorf("discovery did not find llama.cpp's /v1/responses")
			}
			hdr := map[string]string{"X-MegaContext-Id": "real-" + mode}
			r, obj, _ := p.responses(t, map[string]any{"instructions": "Tell stories.", "input": "Once upon a time there was a little girl named Lily.", "max_output_tokens": 16, "temperature": 0}, hdr)
			if r.Status != http.StatusOK {
				t.Fatalf("plain: %d %s", r.Status, r.Body)
			}
			checkWindowHeaders(t, "plain", r.Header, "real-"+mode, 2048)
			if outputText(obj) == "" || obj.Get("usage.output_tokens").Int() <= 0 || (obj.Get("status").Str != "completed" && obj.Get("status").Str != "incomplete") {
				t.Fatalf("plain answer: %s", r.Body)
			}
			// Structured output: llama.cpp's own /v1/responses ignores
			// text.format, so auto translates such a request to its chat
			// completions, which constrain the answer with the schema.
			schema := map[string]any{"type": "object", "additionalProperties": false, "required": []string{"answer", "count"}, "properties": map[string]any{
				"answer": map[string]any{"type": "string", "enum": []string{"yes", "no"}}, "count": map[string]any{"type": "integer", "minimum": 0, "maximum": 9}}}
			for _, stream := range []bool{false, true} {
				r, so, _ := p.responses(t, map[string]any{"input": "Did Lily see any birds? How many?", "max_output_tokens": 64, "temperature": 0, "stream": stream,
					"text": map[string]any{"format": map[string]any{"type": "json_schema", "name": "birds", "strict": true, "schema": schema}}}, hdr)
				var got struct {
					Answer string `json:"answer"`
					Count  *int   `json:"count"`
				}
				if err := json.Unmarshal([]byte(outputText(so)), &got); r.Status != http.StatusOK || err != nil || (got.Answer != "yes" && got.Answer != "no") || got.Count == nil {
					t.Fatalf("structured output (stream %v): %d %q: %v", stream, r.Status, outputText(so), err)
				}
			}
			r, fin, evs := p.responses(t, map[string]any{"previous_response_id": obj.Get("id").Str, "input": "What did Lily find?", "max_output_tokens": 16, "stream": true}, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("stream: %d %s", r.Status, r.Body)
			}
			checkStream(t, evs)
			prev := fin.Get("id").Str
			for turn := 0; turn < 20; turn++ {
				r, o, _ := p.responses(t, map[string]any{"previous_response_id": prev, "input": fmt.Sprintf("Then Lily saw %d birds in the garden.", turn+2), "max_output_tokens": 8, "stream": turn%2 == 0}, nil)
				if r.Status != http.StatusOK || r.Header.Get("X-MegaContext-New-Messages") != "1" || r.Header.Get("X-MegaContext-Id") != "real-"+mode {
					t.Fatalf("turn %d: %d new=%s id=%s %s", turn, r.Status, r.Header.Get("X-MegaContext-New-Messages"), r.Header.Get("X-MegaContext-Id"), r.Body)
				}
				prev = o.Get("id").Str
			}
			if g := p.mustDo(t, "GET", "/v1/responses/"+prev, nil, nil); g.Status != 200 || gjson.GetBytes(g.Body, "id").Str != prev {
				t.Errorf("GET the 22nd response: %d %s", g.Status, g.Body)
			}

			// Recall in a new conversation, each way.
			facts := map[string]string{"the vault password is OCTOPUS-7731": "What is the vault password?", "my parking spot is B-52-LEVEL3": "Where is my parking spot?"}
			i := 0
			for fact, question := range facts {
				ctx := fmt.Sprintf("real-%s-recall-%d", mode, i)
				h := map[string]string{"X-MegaContext-Id": ctx}
				tell := "Remember this: " + fact + "."
				if i == 0 {
					p.responses(t, map[string]any{"input": tell, "max_output_tokens": 8}, h)
					p.waitMessages(t, ctx, 2)
					r := p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: question}}, map[string]any{"max_tokens": 8}), h)
					checkRecall(t, p, r.Header, ctx, question, fact)
				} else {
					p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: tell}}, map[string]any{"max_tokens": 8}), h)
					p.waitMessages(t, ctx, 2)
					r, _, _ := p.responses(t, map[string]any{"input": question, "max_output_tokens": 8}, h)
					checkRecall(t, p, r.Header, ctx, question, fact)
				}
				i++
			}
		})
	}
}

// checkRecall asserts that the window of a question in a new conversation
// held memory, and that the fact is in it (the admin dry-run of the same
// question: llama.cpp does not show the prompts it was sent).
func checkRecall(t *testing.T, p *proxy, h http.Header, ctx, question, fact string) {
	t.Helper()
	if h.Get("X-MegaContext-Memory-Tokens") == "" || h.Get("X-MegaContext-Memory-Tokens") == "0" {
		t.Errorf("%s: no memory in the window of %q", ctx, question)
	}
	body, _ := json.Marshal(map[string]any{"query": question})
	r := p.mustDo(t, "POST", "/megacontext/v1/contexts/"+ctx+"/window", body, nil)
	code := fact[strings.LastIndexByte(fact, ' ')+1:]
	if r.Status != 200 || !strings.Contains(gjson.GetBytes(r.Body, "memory").Str, code) {
		t.Errorf("%s: the window of %q does not hold %s: %d %s", ctx, question, code, r.Status, r.Body)
	}
}

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// Tests of POST/GET/DELETE /v1/responses through the real binary. The SDK
// conformance checks (the official openai package and the Vercel AI SDK)
// are in node/sdk.test.mjs.

// respEvent is one server-sent event of a responses stream.
type respEvent struct {
	Name string
	Data gjson.Result
}

// responses posts a Responses API body and reads the answer: the object,
// or, when streamed, the events (the final event's response as the object).
func (p *proxy) responses(t *testing.T, body any, hdr map[string]string) (*response, gjson.Result, []respEvent) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := p.mustDo(t, "POST", "/v1/responses", b, hdr)
	if r.Status != http.StatusOK {
		return r, gjson.ParseBytes(r.Body), nil
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		if !gjson.ValidBytes(r.Body) {
			t.Fatalf("answer is not JSON: %q", r.Body)
		}
		return r, gjson.ParseBytes(r.Body), nil
	}
	var evs []respEvent
	var name string
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			if !gjson.Valid(data) {
				t.Fatalf("event data is not JSON: %q", data)
			}
			evs = append(evs, respEvent{Name: name, Data: gjson.Parse(data)})
		}
	}
	if len(evs) == 0 {
		t.Fatalf("empty stream")
	}
	return r, evs[len(evs)-1].Data.Get("response"), evs
}

// outputText joins the output_text parts of a response object.
func outputText(obj gjson.Result) string {
	var sb strings.Builder
	obj.Get("output").ForEach(func(_, it gjson.Result) bool {
		it.Get("content").ForEach(func(_, c gjson.Result) bool {
			if c.Get("type").Str == "output_text" {
				sb.WriteString(c.Get("text").Str)
			}
			return true
		})
		return true
	})
	return sb.String()
}

// checkStream asserts the documented event sequence of a text answer.
func checkStream(t *testing.T, evs []respEvent) {
	t.Helper()
	var types []string
	text := ""
	for i, ev := range evs {
		types = append(types, ev.Name)
		if got := ev.Data.Get("type").Str; got != ev.Name {
			t.Errorf("event %d: event %q carries type %q", i, ev.Name, got)
		}
		if n := ev.Data.Get("sequence_number"); n.Type != gjson.Number || int(n.Int()) != i {
			t.Errorf("event %d (%s): sequence_number %s", i, ev.Name, n.Raw)
		}
		if ev.Name == "response.output_text.delta" {
			text += ev.Data.Get("delta").Str
			for _, f := range []string{"item_id", "output_index", "content_index"} {
				if !ev.Data.Get(f).Exists() {
					t.Errorf("delta without %s: %s", f, ev.Data.Raw)
				}
			}
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	tail := []string{"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if types[len(types)-1] == "response.incomplete" { // the output limit was reached
		tail[3] = "response.incomplete"
	}
	if len(types) < len(want)+len(tail)+1 || strings.Join(types[:4], " ") != strings.Join(want, " ") || strings.Join(types[len(types)-4:], " ") != strings.Join(tail, " ") {
		t.Fatalf("event sequence: %v", types)
	}
	for _, ty := range types[4 : len(types)-4] {
		if ty != "response.output_text.delta" {
			t.Errorf("unexpected %s among the deltas: %v", ty, types)
		}
	}
	fin := evs[len(evs)-1].Data.Get("response")
	if got := outputText(fin); got != text || text == "" {
		t.Errorf("final text %q, deltas %q", got, text)
	}
	if got := evs[len(evs)-4].Data.Get("text").Str; got != text {
		t.Errorf("output_text.done text %q, deltas %q", got, text)
	}
	if fin.Get("id").Str != evs[0].Data.Get("response.id").Str {
		t.Errorf("created and completed name different responses")
	}
}

// TestResponsesAPI: a plain and a streamed response through memory: the
// request's settings are echoed, usage and the X-MegaContext-* headers are
// those of chat, the answer is stored for GET, both reach the upstream as
// chat completions (fakellama has no /v1/responses) and the stored
// conversation grows by what was said.
func TestResponsesAPI(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	hdr := map[string]string{"X-MegaContext-Id": "resp-basic"}

	r, obj, _ := p.responses(t, map[string]any{"model": "fake-model", "instructions": "Be terse.", "input": "My locker code is ZX-4471-QK.",
		"max_output_tokens": 64, "temperature": 0.2, "metadata": map[string]string{"k": "v"}, "top_k": 7}, hdr)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	checkWindowHeaders(t, "plain", r.Header, "resp-basic", 4096)
	if !regexp.MustCompile(`^resp_[0-9a-f]{32}$`).MatchString(obj.Get("id").Str) || obj.Get("object").Str != "response" || obj.Get("status").Str != "completed" {
		t.Errorf("response object: %s", r.Body)
	}
	if got := outputText(obj); got != "Noted: My locker code is ZX-4471-QK." {
		t.Errorf("output %q", got)
	}
	for k, want := range map[string]string{"instructions": `"Be terse."`, "max_output_tokens": "64", "temperature": "0.2", "metadata": `{"k":"v"}`, "model": `"fake-model"`, "store": "true", "previous_response_id": "null"} {
		if got := obj.Get(k).Raw; got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	if u := obj.Get("usage"); u.Get("input_tokens").Int() <= 0 || u.Get("output_tokens").Int() <= 0 || u.Get("total_tokens").Int() != u.Get("input_tokens").Int()+u.Get("output_tokens").Int() {
		t.Errorf("usage %s", u.Raw)
	}
	reqs := fake.Requests()
	up := reqs[len(reqs)-1]
	if up.Path != "/v1/chat/completions" || up.MaxTokens != 64 || gjson.GetBytes(up.Body, "temperature").Raw != "0.2" || gjson.GetBytes(up.Body, "top_k").Raw != "7" {
		t.Errorf("upstream request %s: %s", up.Path, up.Body)
	}
	for _, k := range []string{"input", "instructions", "metadata", "store", "max_output_tokens"} {
		if gjson.GetBytes(up.Body, k).Exists() {
			t.Errorf("%s reached a chat upstream: %s", k, up.Body)
		}
	}
	if len(up.Messages) != 2 || up.Messages[0].Role != "system" || !strings.HasPrefix(up.Messages[0].Content, "Be terse.") || up.Messages[1].Content != "My locker code is ZX-4471-QK." {
		t.Errorf("upstream messages %+v", up.Messages)
	}

	r, obj, evs := p.responses(t, map[string]any{"model": "fake-model", "stream": true,
		"input": []any{map[string]any{"role": "user", "content": []any{map[string]string{"type": "input_text", "text": "Tell me about the lighthouse keeper."}}}}}, hdr)
	if r.Status != 200 {
		t.Fatalf("stream status %d: %s", r.Status, r.Body)
	}
	checkWindowHeaders(t, "stream", r.Header, "resp-basic", 4096)
	checkStream(t, evs)
	if !obj.Get("usage.output_tokens").Exists() {
		t.Errorf("no usage in the final event: %s", obj.Raw)
	}
	if reqs := fake.Requests(); !reqs[len(reqs)-1].Stream || !reqs[len(reqs)-1].IncludeUsage {
		t.Errorf("the upstream stream was not asked for usage")
	}

	got := p.mustDo(t, "GET", "/v1/responses/"+obj.Get("id").Str, nil, nil)
	if got.Status != 200 || outputText(gjson.ParseBytes(got.Body)) != outputText(obj) {
		t.Errorf("GET: %d %s", got.Status, got.Body)
	}
	p.waitMessages(t, "resp-basic", 5) // system, user, reply, user, reply
}

// TestResponsesChain: previous_response_id continues a conversation the
// proxy kept, over 25 turns, alternating plain and streamed: each turn
// stores only the new input, the fact of the first turn stays in the
// window the upstream sees, and the whole chain stays in its MegaContext
// whatever the continuation's headers name.
func TestResponsesChain(t *testing.T) {
	fake := newFake(t, fakellama.Options{NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	_, first, _ := p.responses(t, map[string]any{"input": "My locker code is ZX-4471-QK.", "instructions": "Be terse.", "max_output_tokens": 32}, map[string]string{"X-MegaContext-Id": "chain"})
	prev := first.Get("id").Str
	filler := strings.Repeat("the garden river mountain story window paper music kitchen ", 6)
	for turn := 0; turn < 25; turn++ {
		body := map[string]any{"previous_response_id": prev, "input": fmt.Sprintf("Turn %d: %s", turn, filler), "max_output_tokens": 32, "stream": turn%2 == 1}
		if turn == 24 {
			body["input"] = "What is my locker code?"
		}
		r, obj, _ := p.responses(t, body, nil)
		if r.Status != 200 {
			t.Fatalf("turn %d: %d %s", turn, r.Status, r.Body)
		}
		if got := r.Header.Get("X-MegaContext-New-Messages"); got != "1" {
			t.Fatalf("turn %d stored %s new messages, want 1 (the chain was not recognized)", turn, got)
		}
		if got := r.Header.Get("X-MegaContext-Id"); got != "chain" {
			t.Fatalf("turn %d went to MegaContext %q", turn, got)
		}
		if got := obj.Get("previous_response_id").Str; got != prev {
			t.Fatalf("turn %d: previous_response_id %q, want %q", turn, got, prev)
		}
		prev = obj.Get("id").Str
	}
	reqs := fake.Requests()
	last := reqs[len(reqs)-1]
	if !strings.Contains(last.Prompt, "ZX-4471-QK") {
		t.Errorf("the first turn's fact is not in the 26th prompt:\n%s", last.Prompt)
	}
	if last.Messages[0].Role != "system" || strings.HasPrefix(last.Messages[0].Content, "Be terse.") {
		t.Errorf("a continuation without instructions was sent the first turn's: %q", last.Messages[0].Content)
	}
	if last.PromptTokens+32 > 2048 {
		t.Errorf("prompt of %d tokens does not leave the output its room in 2048", last.PromptTokens)
	}
	p.waitMessages(t, "chain", 1+2*26)

	// A continuation with instructions is sent those, and memory still
	// recognizes the stored conversation.
	r, _, _ := p.responses(t, map[string]any{"previous_response_id": prev, "instructions": "Answer in French.", "input": "Hello?"}, nil)
	if r.Status != 200 || r.Header.Get("X-MegaContext-New-Messages") != "1" {
		t.Fatalf("with instructions: %d new=%s %s", r.Status, r.Header.Get("X-MegaContext-New-Messages"), r.Body)
	}
	reqs = fake.Requests()
	if m := reqs[len(reqs)-1].Messages; !strings.HasPrefix(m[0].Content, "Answer in French.") {
		t.Errorf("instructions of the continuation not sent: %q", m[0].Content)
	}
	// A continuation naming another MegaContext is refused.
	r, e, _ := p.responses(t, map[string]any{"previous_response_id": prev, "input": "x"}, map[string]string{"X-MegaContext-Id": "someone-else"})
	if r.Status != 400 || e.Get("error.param").Str != "previous_response_id" {
		t.Errorf("cross-context continuation: %d %s", r.Status, r.Body)
	}
}

// TestResponsesRecallAcrossAPIs: what one API was told, a new conversation
// through the other recalls (the fact reaches the upstream's prompt).
func TestResponsesRecallAcrossAPIs(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	lastPrompt := func() string { r := fake.Requests(); return r[len(r)-1].Prompt }

	hdr := map[string]string{"X-MegaContext-Id": "recall-a"}
	p.responses(t, map[string]any{"input": "Remember this: the vault password is OCTOPUS-7731."}, hdr)
	p.waitMessages(t, "recall-a", 2)
	p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: "What is the vault password?"}}, nil), hdr)
	if !strings.Contains(lastPrompt(), "OCTOPUS-7731") {
		t.Errorf("chat did not recall what the Responses API was told:\n%s", lastPrompt())
	}

	hdr = map[string]string{"X-MegaContext-Id": "recall-b"}
	p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: "Remember this: my parking spot is B-52-LEVEL3."}}, nil), hdr)
	p.waitMessages(t, "recall-b", 2)
	p.responses(t, map[string]any{"input": "Where is my parking spot?", "stream": true}, hdr)
	if !strings.Contains(lastPrompt(), "B-52-LEVEL3") {
		t.Errorf("the Responses API did not recall what chat was told:\n%s", lastPrompt())
	}
}

// TestResponsesTools: function tools and tool_choice reach a chat upstream
// in its terms, the call comes back as a function_call item (and its
// streamed argument events), its output goes back as a tool message, and
// the whole exchange resent as items is recognized as stored.
func TestResponsesTools(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	hdr := map[string]string{"X-MegaContext-Id": "tools"}
	weather := map[string]any{"type": "function", "name": "get_weather", "description": "Weather of a city", "strict": true,
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]string{"type": "string"}}, "required": []string{"city"}}}

	_, obj, _ := p.responses(t, map[string]any{"input": "What is the weather in Paris?", "tools": []any{weather}, "tool_choice": "auto"}, hdr)
	call := obj.Get("output.0")
	if call.Get("type").Str != "function_call" || call.Get("name").Str != "get_weather" || call.Get("arguments").Str != `{"city":"Paris"}` || call.Get("call_id").Str == "" {
		t.Fatalf("no function call: %s", obj.Raw)
	}
	reqs := fake.Requests()
	up := reqs[len(reqs)-1].Body
	if gjson.GetBytes(up, "tools.0.function.name").Str != "get_weather" || gjson.GetBytes(up, "tools.0.function.parameters.required.0").Str != "city" || gjson.GetBytes(up, "tool_choice").Str != "auto" {
		t.Errorf("tools not translated: %s", up)
	}

	out := map[string]any{"type": "function_call_output", "call_id": call.Get("call_id").Str, "output": `{"temperature":"21C"}`}
	r, obj2, _ := p.responses(t, map[string]any{"previous_response_id": obj.Get("id").Str, "input": []any{out}, "tools": []any{weather}}, hdr)
	if r.Status != 200 || obj2.Get("status").Str != "completed" {
		t.Fatalf("tool output turn: %d %s", r.Status, r.Body)
	}
	reqs = fake.Requests()
	m := reqs[len(reqs)-1].Body
	msgs := gjson.GetBytes(m, "messages").Array()
	if n := len(msgs); n < 3 || msgs[n-2].Get("tool_calls.0.function.name").Str != "get_weather" || msgs[n-1].Get("role").Str != "tool" || msgs[n-1].Get("tool_call_id").Str != call.Get("call_id").Str {
		t.Errorf("tool exchange not sent as chat messages: %s", gjson.GetBytes(m, "messages").Raw)
	}

	// Resent whole, as a stateless client does: only the new question is new.
	var items []any
	json.Unmarshal([]byte(`[{"role":"user","content":"What is the weather in Paris?"}]`), &items)
	items = append(items, json.RawMessage(call.Raw), out)
	for _, it := range obj2.Get("output").Array() {
		items = append(items, json.RawMessage(it.Raw))
	}
	items = append(items, map[string]string{"role": "user", "content": "Thanks!"})
	r, _, _ = p.responses(t, map[string]any{"input": items, "tools": []any{weather}}, hdr)
	if got := r.Header.Get("X-MegaContext-New-Messages"); r.Status != 200 || got != "1" {
		t.Errorf("resent exchange stored %s new messages (status %d), want 1", got, r.Status)
	}

	// Streamed: the call's events.
	_, fin, evs := p.responses(t, map[string]any{"input": "Please get the weather for Oslo", "tools": []any{weather}, "tool_choice": map[string]string{"type": "function", "name": "get_weather"}, "stream": true}, hdr)
	var types []string
	args := ""
	for _, ev := range evs {
		types = append(types, ev.Name)
		if ev.Name == "response.function_call_arguments.delta" {
			args += ev.Data.Get("delta").Str
		}
	}
	want := "response.created response.in_progress response.output_item.added response.function_call_arguments.delta"
	if !strings.HasPrefix(strings.Join(types, " "), want) || !strings.HasSuffix(strings.Join(types, " "), "response.function_call_arguments.done response.output_item.done response.completed") {
		t.Errorf("function call events: %v", types)
	}
	if args != `{"city":"Oslo"}` || fin.Get("output.0.arguments").Str != args {
		t.Errorf("streamed arguments %q, final %s", args, fin.Get("output.0").Raw)
	}
}

// TestResponsesItemsAndReferences: every input item kind converts (images,
// developer messages, references to stored output items), store: false
// answers without keeping the response, and DELETE forgets one while the
// conversation stays in memory.
func TestResponsesItemsAndReferences(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	hdr := map[string]string{"X-MegaContext-Id": "items"}
	_, obj, _ := p.responses(t, map[string]any{"input": []any{
		map[string]any{"role": "developer", "content": "Be kind."},
		map[string]any{"type": "message", "role": "user", "content": []any{
			map[string]string{"type": "input_text", "text": "What is in this picture?"},
			map[string]string{"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
		}},
	}}, hdr)
	reqs := fake.Requests()
	up := reqs[len(reqs)-1].Body
	if gjson.GetBytes(up, "messages.0.role").Str != "developer" || gjson.GetBytes(up, "messages.1.content.1.image_url.url").Str != "data:image/png;base64,iVBORw0KGgo=" || gjson.GetBytes(up, "messages.1.content.1.image_url.detail").Str != "low" {
		t.Errorf("items not converted: %s", gjson.GetBytes(up, "messages").Raw)
	}
	// The Vercel AI SDK resends earlier answers as item references.
	ref := obj.Get("output.0.id").Str
	r, _, _ := p.responses(t, map[string]any{"input": []any{
		map[string]any{"role": "developer", "content": "Be kind."},
		map[string]any{"role": "user", "content": []any{map[string]string{"type": "input_text", "text": "What is in this picture?"}, map[string]string{"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}},
		map[string]any{"type": "item_reference", "id": ref},
		map[string]any{"role": "user", "content": "And the colours?"},
	}}, hdr)
	if r.Status != 200 || r.Header.Get("X-MegaContext-New-Messages") != "1" {
		t.Errorf("item_reference: %d new=%s %s", r.Status, r.Header.Get("X-MegaContext-New-Messages"), r.Body)
	}
	r, e, _ := p.responses(t, map[string]any{"input": []any{map[string]any{"type": "item_reference", "id": "msg_00000000000000000000000000000000_0"}}}, hdr)
	if r.Status != 404 || e.Get("error.code").Str != "item_not_found" {
		t.Errorf("unknown reference: %d %s", r.Status, r.Body)
	}

	_, kept, _ := p.responses(t, map[string]any{"input": "Not kept.", "store": false}, hdr)
	if kept.Get("store").Raw != "false" {
		t.Errorf("store not echoed: %s", kept.Raw)
	}
	if g := p.mustDo(t, "GET", "/v1/responses/"+kept.Get("id").Str, nil, nil); g.Status != 404 {
		t.Errorf("a store:false response was kept: %d", g.Status)
	}

	id := obj.Get("id").Str
	d := p.mustDo(t, "DELETE", "/v1/responses/"+id, nil, nil)
	if d.Status != 200 || gjson.GetBytes(d.Body, "deleted").Raw != "true" || gjson.GetBytes(d.Body, "object").Str != "response.deleted" || gjson.GetBytes(d.Body, "id").Str != id {
		t.Errorf("DELETE: %d %s", d.Status, d.Body)
	}
	if g := p.mustDo(t, "GET", "/v1/responses/"+id, nil, nil); g.Status != 404 {
		t.Errorf("GET after DELETE: %d %s", g.Status, g.Body)
	} else {
		checkOpenAIError(t, "GET after DELETE", g.Body)
	}
	if d := p.mustDo(t, "DELETE", "/v1/responses/"+id, nil, nil); d.Status != 404 {
		t.Errorf("second DELETE: %d", d.Status)
	}
	st, _ := p.stats(t, "items")
	if st.Messages < 6 {
		t.Errorf("deleting a response removed its conversation from memory: %d messages", st.Messages)
	}
}

// TestResponsesErrors: bad requests get 400 in OpenAI error JSON naming the
// parameter, unknown ids 404, upstream errors map as in chat, and the
// proxy's routes refuse other methods.
func TestResponsesErrors(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	for _, c := range []struct {
		body   string
		status int
		param  string
	}{
		{`{"model":"m"}`, 400, "input"},
		{`{"input":5}`, 400, "input"},
		{`{"input":"x","max_output_tokens":0}`, 400, "max_output_tokens"},
		{`{"input":"x","stream":"yes"}`, 400, "stream"},
		{`{"input":"x","tools":[{"type":"web_search"}]}`, 400, "tools[0].type"},
		{`{"input":"x","tool_choice":"sometimes"}`, 400, "tool_choice"},
		{`{"input":"x","metadata":{"k":1}}`, 400, "metadata"},
		{`{"input":[{"type":"computer_call_output"}]}`, 400, "input[0].type"},
		{`{"input":[{"role":"wizard","content":"x"}]}`, 400, "input[0].role"},
		{`{"input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, 400, "input[0].content[0].image_url"},
		{`{"input":"x","previous_response_id":"resp_nope"}`, 404, "previous_response_id"},
		{`not json`, 400, ""},
	} {
		r := p.mustDo(t, "POST", "/v1/responses", []byte(c.body), nil)
		if r.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.body, r.Status, c.status, r.Body)
			continue
		}
		e := checkOpenAIError(t, c.body, r.Body)
		if c.param != "" && e.Get("param").Str != c.param {
			t.Errorf("%s: param %q, want %q", c.body, e.Get("param").Str, c.param)
		}
	}
	if r := p.mustDo(t, "GET", "/v1/responses/resp_nope", nil, nil); r.Status != 404 {
		t.Errorf("GET unknown: %d", r.Status)
	}
	if r := p.mustDo(t, "PUT", "/v1/responses", []byte(`{}`), nil); r.Status != 405 {
		t.Errorf("PUT: %d", r.Status)
	}
	fake.FailNext(503, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`)
	r := p.mustDo(t, "POST", "/v1/responses", []byte(`{"input":"x"}`), nil)
	if r.Status != 503 {
		t.Errorf("upstream 503: %d %s", r.Status, r.Body)
	}
	checkOpenAIError(t, "upstream 503", r.Body)
}

// TestResponsesNativeForced: with upstream.responses: native, the
// request goes to the upstream's /v1/responses; one without it answers 404,
// relayed as an OpenAI error.
func TestResponsesNativeForced(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "upstream:\n  responses: native\n"})
	r := p.mustDo(t, "POST", "/v1/responses", []byte(`{"input":"x"}`), nil)
	if r.Status != 404 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	checkOpenAIError(t, "native 404", r.Body)
}

// TestRequireIDAndBaseURL: memory.require_id refuses requests that name
// no MegaContext, on both APIs, and the listening line gives clients their
// base URL.
func TestRequireIDAndBaseURL(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "memory:\n  require_id: true\n"})
	n := len(fake.Requests())
	r := p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, []msg{{Role: "user", Content: "hi"}}, nil), nil)
	if r.Status != 400 || gjson.GetBytes(r.Body, "error.code").Str != "missing_context_id" {
		t.Errorf("chat without id: %d %s", r.Status, r.Body)
	}
	r = p.mustDo(t, "POST", "/v1/responses", []byte(`{"input":"hi"}`), nil)
	if r.Status != 400 || gjson.GetBytes(r.Body, "error.code").Str != "missing_context_id" {
		t.Errorf("responses without id: %d %s", r.Status, r.Body)
	}
	if len(fake.Requests()) != n {
		t.Errorf("a refused request reached the upstream")
	}
	if _, found := p.stats(t, "default"); found {
		t.Errorf("a refused request was stored in the default memory")
	}
	p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: "hi"}}, map[string]any{"user": "ada"}), nil)
	_, obj, _ := p.responses(t, map[string]any{"input": "hi"}, map[string]string{"X-MegaContext-Id": "ada"})
	// A continuation names its MegaContext through the response it continues.
	if r, _, _ := p.responses(t, map[string]any{"input": "again", "previous_response_id": obj.Get("id").Str}, nil); r.Status != 200 {
		t.Errorf("continuation without id: %d %s", r.Status, r.Body)
	}

	log, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "base_url=http://"+p.addr+"/v1") {
		t.Errorf("the listening line does not give the client base URL http://%s/v1:\n%s", p.addr, log)
	}
}

// TestCORS: browsers from a configured origin get their preflight (204,
// the methods, the headers asked for and the proxy's own) and may read the
// X-MegaContext-* headers of answers and errors; other origins get no
// CORS headers and a 403 preflight; with no origins configured, none.
func TestCORS(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "server:\n  cors_origins: [\"https://chat.example.com\"]\nheaders:\n  context_id: [X-MegaContext-Id, X-OpenWebUI-User-Id]\n"})
	pre := map[string]string{"Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type, x-megacontext-id, x-stainless-os"}
	for _, path := range []string{"/v1/chat/completions", "/v1/responses", "/v1/responses/resp_x"} {
		r := p.mustDo(t, "OPTIONS", path, nil, pre)
		h := r.Header
		if r.Status != 204 || h.Get("Access-Control-Allow-Origin") != "https://chat.example.com" {
			t.Fatalf("preflight %s: %d %v", path, r.Status, h)
		}
		for _, m := range []string{"GET", "POST", "DELETE"} {
			if !strings.Contains(h.Get("Access-Control-Allow-Methods"), m) {
				t.Errorf("preflight allows methods %q, not %s", h.Get("Access-Control-Allow-Methods"), m)
			}
		}
		allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
		for _, name := range []string{"authorization", "content-type", "x-megacontext-id", "x-megacontext-thread", "x-openwebui-user-id", "x-stainless-os"} {
			if !strings.Contains(allowed, name) {
				t.Errorf("preflight does not allow %s: %q", name, allowed)
			}
		}
	}
	origin := map[string]string{"Origin": "https://chat.example.com", "X-MegaContext-Id": "browser"}
	r := p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, []msg{{Role: "user", Content: "hi"}}, nil), origin)
	exposed := r.Header.Get("Access-Control-Expose-Headers")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" || !strings.Contains(exposed, "X-MegaContext-Window-Tokens") || !strings.Contains(exposed, "X-MegaContext-Id") {
		t.Errorf("answer to a browser: %d allow-origin %q expose %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"), exposed)
	}
	r = p.mustDo(t, "POST", "/v1/responses", []byte(`{}`), origin)
	if r.Status != 400 || r.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" {
		t.Errorf("an error must reach the browser too: %d %v", r.Status, r.Header)
	}

	evil := map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
	r = p.mustDo(t, "OPTIONS", "/v1/chat/completions", nil, evil)
	if r.Status != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of another origin: %d %v", r.Status, r.Header)
	}
	r = p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, []msg{{Role: "user", Content: "hi"}}, nil), map[string]string{"Origin": "https://evil.example"})
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin was allowed: %v", r.Header)
	}

	plain := startProxy(t, proxyOptions{Upstream: fake.URL()})
	r = plain.mustDo(t, "OPTIONS", "/v1/chat/completions", nil, pre)
	if r.Status != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("default config allowed a browser origin: %d %v", r.Status, r.Header)
	}
}

// TestStreamsKeepUpstreamConnections: a streamed answer, chat or
// Responses, leaves its upstream connection open for the next request once
// the upstream's [DONE] arrived (a connection closed there made every turn
// after a streamed one dial the upstream again).
func TestStreamsKeepUpstreamConnections(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	hdr := map[string]string{"X-MegaContext-Id": "keepalive"}
	msgs := []msg{{Role: "user", Content: "Tell me about the lighthouse keeper."}}
	turn := func(i int) {
		res := p.mustChat(t, chatBody(t, msgs, map[string]any{"stream": true, "max_tokens": 32}), hdr)
		msgs = append(msgs, msg{Role: "assistant", Content: res.Content}, msg{Role: "user", Content: fmt.Sprintf("And what did he do on day %d?", i)})
		r, obj, evs := p.responses(t, map[string]any{"model": "fake-model", "stream": true, "max_output_tokens": 32, "input": msgs}, hdr)
		if r.Status != 200 || obj.Get("status").Str != "completed" {
			t.Fatalf("turn %d: responses stream %d: %s", i, r.Status, r.Body)
		}
		checkStream(t, evs)
	}
	turn(0) // discovery and the first connections
	before := fake.Connections()
	const turns = 8
	for i := 1; i <= turns; i++ {
		turn(i)
	}
	// Each turn makes four requests in sequence (a /tokenize and a stream
	// per API); an embedding pass may overlap one now and then.
	if opened := fake.Connections() - before; opened > 2 {
		t.Errorf("%d streamed turns opened %d new upstream connections, want at most 2", 2*turns, opened)
	}
}

package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// runStream feeds SSE text through translateStream, as streamResponse
// does, and returns the events written and the answer.
func runStream(t *testing.T, native bool, sse string) ([]gjson.Result, *answer) {
	t.Helper()
	req, aerr := parseResponsesRequest([]byte(`{"model":"m","input":"hi"}`))
	if aerr != nil {
		t.Fatal(aerr)
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	s := &Server{log: slog.New(slog.DiscardHandler), m: newMetrics()}
	var saved *answer
	save := func(a *answer, created time.Time, _ bool) ([]byte, error) {
		saved = a
		return req.object(a, created).appendJSON(nil), nil
	}
	s.translateStream(bw, io.NopCloser(strings.NewReader(sse)), req, "resp_0123456789abcdef0123456789abcdef", time.Unix(1, 0), native, save)
	bw.Flush()
	var evs []gjson.Result
	name := ""
	for _, line := range strings.Split(buf.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			d := gjson.Parse(strings.TrimPrefix(line, "data: "))
			if d.Get("type").Str != name {
				t.Fatalf("event %q carries type %q", name, d.Get("type").Str)
			}
			evs = append(evs, d)
		}
	}
	return evs, saved
}

// checkEvents asserts what every SDK relies on: sequence numbers count
// from 0, every item event names an announced item by the proxy's id and
// its position, and text and arguments deltas add up to the done events.
func checkEvents(t *testing.T, evs []gjson.Result) map[string]string {
	t.Helper()
	items := map[int]string{}
	texts := map[string]string{}
	for i, ev := range evs {
		if int(ev.Get("sequence_number").Int()) != i || !ev.Get("sequence_number").Exists() {
			t.Fatalf("event %d: sequence_number %s", i, ev.Get("sequence_number").Raw)
		}
		typ := ev.Get("type").Str
		idx := int(ev.Get("output_index").Int())
		switch typ {
		case "response.output_item.added":
			if _, dup := items[idx]; dup || idx != len(items) {
				t.Fatalf("item %d announced out of order: %s", idx, ev.Raw)
			}
			items[idx] = ev.Get("item.id").Str
		case "response.output_text.delta", "response.function_call_arguments.delta", "response.reasoning_text.delta":
			if items[idx] == "" || items[idx] != ev.Get("item_id").Str {
				t.Fatalf("%s for an unannounced item: %s", typ, ev.Raw)
			}
			texts[items[idx]] += ev.Get("delta").Str
		case "response.output_text.done", "response.reasoning_text.done":
			if got := ev.Get("text").Str; got != texts[ev.Get("item_id").Str] {
				t.Errorf("%s text %q, deltas %q", typ, got, texts[ev.Get("item_id").Str])
			}
		case "response.function_call_arguments.done":
			if got := ev.Get("arguments").Str; got != texts[ev.Get("item_id").Str] {
				t.Errorf("arguments %q, deltas %q", got, texts[ev.Get("item_id").Str])
			}
		}
	}
	for _, id := range items {
		if !strings.Contains(id, "0123456789abcdef0123456789abcdef") {
			t.Errorf("item id %q is not the proxy's", id)
		}
	}
	return texts
}

// A chat stream with reasoning, text and two tool calls (the second's name
// arriving after its first fragment) translates into items in order, and
// the answer memory stores is what the client was sent.
func TestChatStreamTranslated(t *testing.T) {
	chunk := func(delta string) string {
		return `data: {"choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
	}
	sse := chunk(`{"role":"assistant","content":null}`) +
		chunk(`{"reasoning_content":"Think"}`) + chunk(`{"reasoning_content":"ing."}`) +
		chunk(`{"content":"Hello"}`) + chunk(`{"content":" there"}`) +
		chunk(`{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}`) +
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}`) +
		chunk(`{"tool_calls":[{"index":1,"id":"call_b","function":{"arguments":"{}"}}]}`) +
		chunk(`{"tool_calls":[{"index":1,"function":{"name":"g"}}]}`) +
		`data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}` + "\n\n" +
		"data: [DONE]\n\n"
	evs, a := runStream(t, false, sse)
	checkEvents(t, evs)
	var kinds []string
	for _, it := range a.items {
		kinds = append(kinds, it.Type)
	}
	if strings.Join(kinds, " ") != "reasoning message function_call function_call" {
		t.Fatalf("items %v", kinds)
	}
	if a.items[1].Text != "Hello there" || a.items[2].Arguments != `{"x":1}` || a.items[3].Name != "g" || a.items[3].Arguments != "{}" || a.items[3].CallID != "call_b" {
		t.Errorf("items %+v", a.items)
	}
	m := a.message()
	if m.Content != "Hello there" || len(m.ToolCalls) != 2 || m.ToolCalls[0].ID != "call_a" || m.Reasoning != "Thinking." {
		t.Errorf("stored message %+v", m)
	}
	if a.status != "completed" || a.usage.OutputTokens != 7 {
		t.Errorf("status %s usage %+v", a.status, a.usage)
	}
}

// Arguments of a parallel tool call that come after the next call opened
// still join their own item, and a long answer's text adds up (a delta
// appends to its item's text in place).
func TestChatStreamInterleavedCalls(t *testing.T) {
	chunk := func(delta string) string {
		return `data: {"choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
	}
	sse := chunk(`{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}`) +
		chunk(`{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{"}}]}`) +
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}`) +
		chunk(`{"tool_calls":[{"index":1,"function":{"arguments":"}"}}]}`)
	var want strings.Builder
	for i := range 300 {
		d := fmt.Sprintf(" w%d\u00e9\\\"", i)
		sse += chunk(`{"content":"` + d + `"}`)
		want.WriteString(gjson.Parse(`"` + d + `"`).Str)
	}
	sse += `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"
	evs, a := runStream(t, false, sse)
	texts := checkEvents(t, evs)
	if len(a.items) != 3 || a.items[0].Arguments != `{"x":1}` || a.items[1].Arguments != "{}" || a.items[2].Text != want.String() || texts[a.items[2].ID] != want.String() {
		t.Errorf("items %+v", a.items[:min(len(a.items), 2)])
	}
}

// A native stream as llama.cpp sends it (no output_index, no sequence
// numbers, its own ids) and one as OpenAI sends it (function call, unknown
// event kinds) come out in the proxy's terms.
func TestNativeStreamNormalized(t *testing.T) {
	ev := func(typ, data string) string { return "event: " + typ + "\ndata: " + data + "\n\n" }
	llama := ev("response.created", `{"type":"response.created","response":{"id":"resp_up","object":"response","status":"in_progress"}}`) +
		ev("response.output_item.added", `{"type":"response.output_item.added","item":{"content":[],"id":"msg_up","role":"assistant","status":"in_progress","type":"message"}}`) +
		ev("response.content_part.added", `{"type":"response.content_part.added","item_id":"msg_up","part":{"type":"output_text","text":""}}`) +
		ev("response.output_text.delta", `{"type":"response.output_text.delta","item_id":"msg_up","delta":"Once"}`) +
		ev("response.output_text.delta", `{"type":"response.output_text.delta","item_id":"msg_up","delta":" upon"}`) +
		ev("response.output_text.done", `{"type":"response.output_text.done","item_id":"msg_up","text":"Once upon"}`) +
		ev("response.output_item.done", `{"type":"response.output_item.done","item":{"type":"message","status":"completed","id":"msg_up","content":[{"type":"output_text","text":"Once upon"}],"role":"assistant"}}`) +
		ev("response.completed", `{"type":"response.completed","response":{"id":"resp_up","status":"completed","model":"stories","output":[],"usage":{"input_tokens":9,"output_tokens":2,"total_tokens":11}}}`)
	evs, a := runStream(t, true, llama)
	texts := checkEvents(t, evs)
	if len(a.items) != 1 || a.items[0].Text != "Once upon" || texts[a.items[0].ID] != "Once upon" || a.status != "completed" || a.usage.InputTokens != 9 || a.model != "stories" {
		t.Errorf("llama.cpp stream: %+v", a)
	}

	openai := ev("response.created", `{"type":"response.created","sequence_number":0,"response":{"id":"resp_up"}}`) +
		ev("response.output_item.added", `{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"fc_up","type":"function_call","status":"in_progress","arguments":"","call_id":"call_1","name":"get_weather"}}`) +
		ev("response.function_call_arguments.delta", `{"type":"response.function_call_arguments.delta","sequence_number":2,"item_id":"fc_up","output_index":0,"delta":"{\"city\":"}`) +
		ev("response.function_call_arguments.delta", `{"type":"response.function_call_arguments.delta","sequence_number":3,"item_id":"fc_up","output_index":0,"delta":"\"Paris\"}"}`) +
		ev("response.future.event", `{"type":"response.future.event","sequence_number":4,"item_id":"fc_up","output_index":0,"x":1}`) +
		ev("response.output_item.done", `{"type":"response.output_item.done","sequence_number":5,"output_index":0,"item":{"id":"fc_up","type":"function_call","status":"completed","arguments":"{\"city\":\"Paris\"}","call_id":"call_1","name":"get_weather"}}`) +
		ev("response.incomplete", `{"type":"response.incomplete","sequence_number":6,"response":{"id":"resp_up","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[]}}`)
	evs, a = runStream(t, true, openai)
	checkEvents(t, evs)
	var future gjson.Result
	for _, e := range evs {
		if e.Get("type").Str == "response.future.event" {
			future = e
		}
	}
	if future.Get("item_id").Str != a.items[0].ID || future.Get("x").Int() != 1 {
		t.Errorf("unknown event not relayed in the proxy's terms: %s", future.Raw)
	}
	m := a.message()
	if len(m.ToolCalls) != 1 || m.ToolCalls[0].ID != "call_1" || m.ToolCalls[0].Name != "get_weather" || m.ToolCalls[0].Arguments != `{"city":"Paris"}` {
		t.Errorf("tool call %+v", m.ToolCalls)
	}
	if a.status != "incomplete" || a.incomplete != "max_output_tokens" {
		t.Errorf("status %s %s", a.status, a.incomplete)
	}

	// A server that sends only the final response still streams its items.
	only := ev("response.completed", `{"type":"response.completed","response":{"status":"completed","output":[{"type":"message","id":"m1","content":[{"type":"output_text","text":"All at once."}]}]}}`)
	evs, a = runStream(t, true, only)
	if texts := checkEvents(t, evs); len(a.items) != 1 || texts[a.items[0].ID] != "All at once." {
		t.Errorf("final-only stream: %+v", a.items)
	}
}

// The stored form of an answer is what the client's resend of the answer's
// items turns into: memory recognizes it as the same message.
func TestAnswerResendMatchesStoredReply(t *testing.T) {
	for _, msg := range []upstream.Message{
		{Content: "Plain text."},
		{ToolCalls: []upstream.ToolCall{{ID: "call_1", Name: "f", Arguments: `{"a":1}`}, {ID: "call_2", Name: "g", Arguments: `{}`}}, FinishReason: "tool_calls"},
		{Content: "Let me check.", ToolCalls: []upstream.ToolCall{{ID: "call_3", Name: "f", Arguments: `{}`}}},
	} {
		a := answerFromChat(newResponseID(), msg)
		stored, err := responseMessage(a.message())
		if err != nil {
			t.Fatal(err)
		}
		items, _ := json.Marshal(a.items)
		req, aerr := parseResponsesRequest([]byte(`{"input":` + string(items) + `}`))
		if aerr != nil {
			t.Fatal(aerr)
		}
		got, aerr := req.messages(func(string) (gjson.Result, bool) { return gjson.Result{}, false })
		if aerr != nil {
			t.Fatal(aerr)
		}
		if len(got) == 1 {
			var err error
			if got[0], err = decodeInput(0, got[0].Raw); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != 1 || !sameMessage(got[0], stored) {
			t.Errorf("resent items %s became %+v, stored %+v", items, got, stored)
		}
	}
}

func sameMessage(a, b memory.Message) bool {
	return a.Role == b.Role && a.Name == b.Name && a.Text == b.Text
}

// Item ids name their response and position.
func TestItemIDs(t *testing.T) {
	id := newResponseID()
	for i, prefix := range []string{"msg", "fc", "rs"} {
		resp, idx, ok := parseItemID(itemID(prefix, id, i+7))
		if !ok || resp != id || idx != i+7 {
			t.Errorf("%s: %q %d %v", prefix, resp, idx, ok)
		}
	}
	for _, bad := range []string{"", "msg", "msg_", "msg_abc", "msg_abc_x", "msg_abc_-1"} {
		if _, _, ok := parseItemID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A body nested past the limit is refused before any parser recurses into
// it (16 MiB of '[' once overflowed gjson's stack: a fatal error).
func TestResponsesRequestTooDeep(t *testing.T) {
	body := `{"input":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`
	if _, aerr := parseResponsesRequest([]byte(body)); aerr == nil || aerr.code != "json_too_deep" {
		t.Fatalf("deep body: %+v", aerr)
	}
}

// FuzzParseResponsesRequest: no body panics the parser or the translation,
// and whatever is accepted translates to valid JSON.
func FuzzParseResponsesRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi","instructions":"x","max_output_tokens":5,"stream":true,"metadata":{"a":"b"}}`,
		`{"input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"data:x","detail":"low"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"ok"},{"type":"item_reference","id":"msg_ab_0"},{"type":"reasoning"}]}`,
		`{"input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_schema","name":"n","schema":{}}},"top_k":3}`,
		`{"input":[{"role":"assistant","content":[{"type":"output_text","text":"a"}]},{"role":"assistant","content":"b"}]}`,
		`{"input":null,"previous_response_id":"resp_1"}`,
		`[]`, `{"input":[1,[],{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"input":[{"role":"user","content":"a"},],"model":"m"}`))
	f.Add([]byte(`{"input":[{"role":"user","content":"a"}],"inp\u0075t":[]}`))
	f.Add([]byte(`{"input":[{"role":"user","content":"a" "x":1},{"role":"user","content":"b"}]}`))
	f.Add([]byte(`{"input":[{"role":"user","content":"a\"]}"},{"role":"assistant","content":"b"},{"role":"assistant","content":"c"}],"stream":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		resolve := func(id string) (gjson.Result, bool) {
			return gjson.Parse(`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ref"}]}`), strings.HasPrefix(id, "msg_")
		}
		read := func(scan bool) (*responsesRequest, []memory.Message, *apiError) {
			r, aerr := parseResponses(body, scan)
			if aerr != nil {
				return nil, nil, aerr
			}
			msgs, aerr := r.messages(resolve)
			return r, msgs, aerr
		}
		r, msgs, aerr := read(true)
		// The scan reads the items the whole parse reads, but for a
		// duplicate "input" key, which only the scan refuses.
		if _, res := scanArray(body, "input", maxNesting); res != scanDuplicate {
			_, whole, werr := read(false)
			if (aerr == nil) != (werr == nil) {
				t.Fatalf("scan: %v, whole parse: %v", aerr, werr)
			}
			if len(msgs) != len(whole) {
				t.Fatalf("%d messages, whole parse %d", len(msgs), len(whole))
			}
			for i := range msgs {
				var a, b any
				if json.Unmarshal(msgs[i].Raw, &a) != nil || json.Unmarshal(whole[i].Raw, &b) != nil || !reflect.DeepEqual(a, b) {
					t.Fatalf("message %d: %s, whole parse %s", i, msgs[i].Raw, whole[i].Raw)
				}
			}
		} else if aerr == nil {
			t.Fatal("accepted a duplicate input key")
		}
		if aerr != nil {
			return
		}
		for i, m := range msgs {
			if !json.Valid(m.Raw) {
				t.Fatalf("message raw is not JSON: %s", m.Raw)
			}
			_, _ = decodeInput(i, m.Raw)
		}
		if b := r.chatBody(); !json.Valid(b) {
			t.Fatalf("chat body is not JSON: %s", b)
		}
		a := answerFromChat(newResponseID(), upstream.Message{Content: "x"})
		if b := mustMarshal(r.object(a, time.Now())); !json.Valid(b) {
			t.Fatalf("response object is not JSON: %s", b)
		}
	})
}

// The hand-written response object says what encoding/json would say of
// the same struct, and its items are those the API documents.
func TestResponseObjectJSON(t *testing.T) {
	req, aerr := parseResponsesRequest([]byte(`{"model":"m","input":"x","instructions":"Be \"brief\" <b>","metadata":{"k":"v"},"tools":[{"type":"function","name":"f"}],"temperature":0.5}`))
	if aerr != nil {
		t.Fatal(aerr)
	}
	a := answerFromChat(newResponseID(), upstream.Message{Reasoning: "hmm", Content: "Hi \u2028 there\n", ToolCalls: []upstream.ToolCall{{ID: "c", Name: "f", Arguments: `{"a":"<1>"}`}},
		FinishReason: "length", Usage: &upstream.Usage{PromptTokens: 3, CompletionTokens: 4, CachedTokens: 1}})
	for _, fail := range []bool{false, true} {
		if fail {
			a.fail("server_error", "it \"broke\"")
			a.usage = nil
		}
		o := req.object(a, time.Unix(5, 0))
		got := o.appendJSON(nil)
		type plain responseObject
		want, err := json.Marshal((*plain)(o))
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, got)
		}
		json.Unmarshal(want, &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Fatalf("object:\n got %s\nwant %s", gb, wb)
		}
	}
	for _, c := range []struct {
		it   outputItem
		want string
	}{
		{outputItem{Type: "message", ID: "msg_1", Text: "a\"b", Done: true}, `{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"a\"b","annotations":[],"logprobs":[]}]}`},
		{outputItem{Type: "message", ID: "msg_2"}, `{"id":"msg_2","type":"message","status":"in_progress","role":"assistant","content":[]}`},
		{outputItem{Type: "function_call", ID: "fc_1", CallID: "c", Name: "f", Arguments: "{}", Done: true}, `{"id":"fc_1","type":"function_call","status":"completed","call_id":"c","name":"f","arguments":"{}"}`},
		{outputItem{Type: "reasoning", ID: "rs_1", Text: "t"}, `{"id":"rs_1","type":"reasoning","status":"in_progress","summary":[],"content":[{"type":"reasoning_text","text":"t"}]}`},
		{outputItem{Type: "web_search_call", Raw: []byte(`{"type":"web_search_call","id":"w"}`)}, `{"type":"web_search_call","id":"w"}`},
	} {
		if got := string(c.it.appendJSON(nil)); got != c.want {
			t.Errorf("item:\n got %s\nwant %s", got, c.want)
		}
	}
}

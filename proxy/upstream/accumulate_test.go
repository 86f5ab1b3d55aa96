package upstream

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// chunks joins chunk JSON into an SSE stream.
func sseOf(chunks ...string) string {
	var b strings.Builder
	for _, c := range chunks {
		b.WriteString("data: ")
		b.WriteString(c)
		b.WriteString("\n\n")
	}
	return b.String()
}

func accumulate(t testing.TB, stream string) (Message, []error) {
	r := NewSSEReader(strings.NewReader(stream))
	var a Accumulator
	var errs []error
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		if err := a.AddEvent(ev); err != nil {
			errs = append(errs, err)
		}
	}
	return a.Message(), errs
}

func TestAccumulatorContent(t *testing.T) {
	stream := sseOf(
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"qwen","choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`,
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"qwen","choices":[{"index":0,"delta":{"reasoning_content":"Think."}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"system_fingerprint":"b1"}`,
		`{"id":"chatcmpl-1","choices":[{"index":1,"delta":{"content":"OTHER CHOICE"}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"lo \u00e9"},"finish_reason":null}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"timings":{"predicted_n":3}}`,
		`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":8}}}`,
		`[DONE]`,
	)
	m, errs := accumulate(t, stream)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := Message{ID: "chatcmpl-1", Model: "qwen", Role: "assistant", Content: "Hello é", Reasoning: "Think.",
		FinishReason: "stop", Usage: &Usage{10, 3, 13, 8}, Done: true}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
}

func TestAccumulatorToolCalls(t *testing.T) {
	cases := []struct {
		name   string
		stream string
		want   []ToolCall
		finish string
	}{
		{"OpenAI parallel calls", sseOf(
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
			`[DONE]`),
			[]ToolCall{
				{Index: 0, ID: "call_a", Type: "function", Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{Index: 1, ID: "call_b", Type: "function", Name: "get_time", Arguments: `{}`},
			}, "tool_calls"},
		{"name repeated each chunk", sseOf(
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":"{\"a\""}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":":1}"}}]}}]}`),
			[]ToolCall{{Index: 0, ID: "x", Type: "function", Name: "f", Arguments: `{"a":1}`}}, ""},
		{"no index, matched by id then continued", sseOf(
			`{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{"}}]}}]}`,
			`{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}`,
			`{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":{"k":true}}}]}}]}`),
			[]ToolCall{
				{Index: 0, ID: "a", Type: "function", Name: "f", Arguments: `{}`},
				{Index: 1, ID: "b", Type: "function", Name: "g", Arguments: `{"k":true}`},
			}, ""},
		{"out-of-order indexes are sorted", sseOf(
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"id":"c","function":{"name":"h"}},{"index":0,"id":"a","function":{"name":"f"}}]}}]}`),
			[]ToolCall{
				{Index: 0, ID: "a", Type: "function", Name: "f"},
				{Index: 2, ID: "c", Type: "function", Name: "h"},
			}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, errs := accumulate(t, tc.stream)
			if len(errs) != 0 {
				t.Fatalf("errors: %v", errs)
			}
			if !reflect.DeepEqual(m.ToolCalls, tc.want) {
				t.Fatalf("tool calls = %+v\nwant %+v", m.ToolCalls, tc.want)
			}
			if m.FinishReason != tc.finish {
				t.Errorf("finish = %q, want %q", m.FinishReason, tc.finish)
			}
		})
	}
}

func TestAccumulatorTolerance(t *testing.T) {
	stream := sseOf(
		`{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"A"},{"type":"image_url"}]}}],"x_unknown":{"deep":[1,2]}}`,
		`not json`,
		`[1,2,3]`,
		``,
		`{"choices":null,"usage":null}`,
		`{"choices":[{"index":0,"delta":{"content":"B","reasoning":"r"}}]}`,
	) + ": keep-alive\n\n" + "data: [DONE]\n\n"
	m, errs := accumulate(t, stream)
	if len(errs) != 2 {
		t.Fatalf("want 2 errors (not json, not object), got %v", errs)
	}
	if m.Content != "AB" || m.Reasoning != "r" || !m.Done || m.Usage != nil || m.Role != "assistant" {
		t.Fatalf("got %+v", m)
	}
}

func TestAccumulatorReasoningBothNames(t *testing.T) {
	m, _ := accumulate(t, sseOf(`{"choices":[{"index":0,"delta":{"reasoning_content":"a","reasoning":"a"}}]}`,
		`{"choices":[{"index":0,"delta":{"reasoning":"b"}}]}`))
	if m.Reasoning != "ab" {
		t.Fatalf("reasoning = %q", m.Reasoning)
	}
}

func TestAccumulatorErrors(t *testing.T) {
	m, _ := accumulate(t, sseOf(`{"choices":[{"index":0,"delta":{"content":"par"}}]}`,
		`{"error":{"code":500,"message":"slot died","type":"server_error"}}`))
	if m.Error != "slot died" || m.Content != "par" || m.Done {
		t.Fatalf("data error: %+v", m)
	}
	m, _ = accumulate(t, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\nerror: {\"code\":400,\"message\":\"bad\"}\n\n")
	if m.Error != "bad" || m.Content != "x" {
		t.Fatalf("error line: %+v", m)
	}
	m, _ = accumulate(t, "event: error\ndata: oops\n\n")
	if m.Error != "oops" {
		t.Fatalf("error event: %+v", m)
	}
}

func TestFromCompletion(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    Message
		wantErr bool
	}{
		{"llama.cpp", `{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"Hi!","reasoning_content":"hmm"}}],"created":1,"model":"gpt-3.5-turbo","system_fingerprint":"b1","object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":5,"total_tokens":7},"id":"chatcmpl-x","timings":{}}`,
			Message{ID: "chatcmpl-x", Model: "gpt-3.5-turbo", Role: "assistant", Content: "Hi!", Reasoning: "hmm", FinishReason: "stop", Usage: &Usage{5, 2, 7, 0}}, false},
		{"vLLM tool calls", `{"id":"chatcmpl-v","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}},{"id":"t2","function":{"name":"g","arguments":{"b":2}}}]},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null}],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1},"prompt_logprobs":null}`,
			Message{ID: "chatcmpl-v", Model: "m", Role: "assistant", FinishReason: "tool_calls", Usage: &Usage{1, 1, 2, 0},
				ToolCalls: []ToolCall{{Index: 0, ID: "chatcmpl-tool-1", Type: "function", Name: "f", Arguments: `{"a": 1}`}, {Index: 1, ID: "t2", Type: "function", Name: "g", Arguments: `{"b":2}`}}}, false},
		{"content parts", `{"choices":[{"index":0,"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}`,
			Message{Role: "assistant", Content: "ab"}, false},
		{"error body", `{"error":{"message":"nope","type":"x"}}`, Message{Error: "nope"}, true},
		{"no choices", `{"id":"x"}`, Message{ID: "x"}, true},
		{"garbage", `<html>`, Message{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := FromCompletion([]byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(m, tc.want) {
				t.Fatalf("got %+v\nwant %+v", m, tc.want)
			}
		})
	}
}

// An upstream answer nested millions of levels deep overflowed the
// goroutine stack in gjson's validator: a fatal error no recover catches,
// which took the whole proxy down. It is now an error like any other bad
// body.
func TestDeepUpstreamJSON(t *testing.T) {
	deep := []byte(strings.Repeat("[", 64<<20))
	if _, err := FromCompletion(deep); err == nil {
		t.Error("FromCompletion accepted 64 MiB of '['")
	}
	var acc Accumulator
	if err := acc.Add(deep[:8<<20]); err == nil {
		t.Error("Accumulator accepted 8 MiB of '['")
	}
	_ = acc.AddEvent(Event{Name: "error", Data: deep[:8<<20]})
	if out := OpenAIError(500, deep); !json.Valid(out) || IsContextLengthError(400, deep) {
		t.Errorf("OpenAIError of a deep body: %.200s", out)
	}
}

// FuzzAccumulator feeds arbitrary event data; the accumulator must never
// panic, and the message must stay consistent.
func FuzzAccumulator(f *testing.F) {
	for _, s := range []string{
		strings.Repeat("[", 200), `{"choices":[{"delta":{"content":` + strings.Repeat("[", 5000) + `}}]}`,
		`{"choices":[{"index":0,"delta":{"content":"x","tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}],"usage":{"prompt_tokens":1}}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":99999999999,"id":"z"}]},"finish_reason":"stop"}]}`,
		`{"error":"x"}`, `[DONE]`, `{"choices":[{"message":{"content":[{"text":"p"}]}}]}`, `null`, `{`,
	} {
		f.Add([]byte(s), []byte(`{"choices":[{"index":0,"delta":{"content":"y"}}]}`))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var acc Accumulator
		_ = acc.Add(a)
		_ = acc.AddEvent(Event{Name: "error", Data: b})
		_ = acc.Add(b)
		_ = acc.Add(a)
		m := acc.Message()
		if len(m.ToolCalls) > maxToolCalls {
			t.Fatalf("%d tool calls", len(m.ToolCalls))
		}
		for i := 1; i < len(m.ToolCalls); i++ {
			if m.ToolCalls[i-1].Index > m.ToolCalls[i].Index {
				t.Fatalf("tool calls not sorted: %+v", m.ToolCalls)
			}
		}
		if m.Role == "" {
			t.Fatal("empty role")
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		_, _ = FromCompletion(a)
	})
}

func BenchmarkSSEAccumulate(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(sseOf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`))
	for i := 0; i < 500; i++ {
		sb.WriteString(sseOf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"b6000","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}`))
	}
	for i := 0; i < 50; i++ {
		sb.WriteString(sseOf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"k\":1}"}}]},"finish_reason":null}]}`))
	}
	sb.WriteString(sseOf(`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":550,"total_tokens":560}}`, `[DONE]`))
	stream := sb.String()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewSSEReader(strings.NewReader(stream))
		var a Accumulator
		events := 0
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			events++
			if err := a.AddEvent(ev); err != nil {
				b.Fatal(err)
			}
		}
		if m := a.Message(); !m.Done || len(m.Content) != 3000 || events != 553 {
			b.Fatalf("bad result: done=%v len=%d events=%d", m.Done, len(m.Content), events)
		}
	}
}

// The pieces OnDelta reports add up to the message the Accumulator
// assembles, however the stream is cut into chunks.
func TestAccumulatorDeltasAddUp(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		content := rapid.StringMatching(`[a-z ]{0,40}`).Draw(t, "content")
		args := rapid.StringMatching(`[a-z{}":,]{0,40}`).Draw(t, "args")
		cut := func(s, label string) []string {
			var out []string
			for len(s) > 0 {
				n := rapid.IntRange(1, len(s)).Draw(t, label)
				out = append(out, s[:n])
				s = s[n:]
			}
			return out
		}
		var acc Accumulator
		var text, got strings.Builder
		name := ""
		acc.OnDelta = func(d Delta) {
			text.WriteString(d.Content)
			if d.Tool == 0 {
				got.WriteString(d.Arguments)
				name = d.Call.Name
			}
		}
		for _, c := range cut(content, "c") {
			b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": c}}}})
			if err := acc.Add(b); err != nil {
				t.Fatal(err)
			}
		}
		for i, a := range cut(args, "a") {
			fn := map[string]any{"arguments": a}
			if i == 0 {
				fn["name"] = "f"
			}
			b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": fn}}}}}})
			if err := acc.Add(b); err != nil {
				t.Fatal(err)
			}
		}
		m := acc.Message()
		if text.String() != m.Content || text.String() != content {
			t.Fatalf("content deltas %q, message %q", text.String(), m.Content)
		}
		if args != "" && (got.String() != m.ToolCalls[0].Arguments || got.String() != args || name != "f") {
			t.Fatalf("argument deltas %q (name %q), message %+v", got.String(), name, m.ToolCalls)
		}
	})
}

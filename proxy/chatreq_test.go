package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory"
)

func TestParseChatRequestTable(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		status int
		param  string
		text   string
	}{
		{"ok", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 0, "", "hi"},
		{"not json", `{"messages":`, 400, "", ""},
		{"not object", `[1,2]`, 400, "", ""},
		{"missing messages", `{"model":"m"}`, 400, "messages", ""},
		{"empty messages", `{"messages":[]}`, 400, "messages", ""},
		{"messages not array", `{"messages":"hi"}`, 400, "messages", ""},
		{"bad role", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role", ""},
		{"content number", `{"messages":[{"role":"user","content":5}]}`, 400, "messages[0].content", ""},
		{"user without content", `{"messages":[{"role":"user"}]}`, 400, "messages[0].content", ""},
		{"assistant null content with tools", `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}]}`, 0, "", "q"},
		{"parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:x"}}]}]}`, 0, "", "look\n[image_url]"},
		{"bad part", `{"messages":[{"role":"user","content":[{"type":"text"}]}]}`, 400, "messages[0].content[0].text", ""},
		{"max_tokens float", `{"messages":[{"role":"user","content":"x"}],"max_tokens":1.5}`, 400, "max_tokens", ""},
		{"max_tokens zero", `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens", ""},
		{"stream string", `{"messages":[{"role":"user","content":"x"}],"stream":"yes"}`, 400, "stream", ""},
		{"user number", `{"messages":[{"role":"user","content":"x"}],"user":5}`, 400, "user", ""},
	}
	for _, c := range cases {
		r, err := parseDecoded([]byte(c.body))
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: unexpected error %v", c.name, err)
				continue
			}
			if r.messages[0].Text != c.text {
				t.Errorf("%s: text %q, want %q", c.name, r.messages[0].Text, c.text)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if err.status != c.status || err.param != c.param {
			t.Errorf("%s: got %d %q, want %d %q", c.name, err.status, err.param, c.status, c.param)
		}
	}
}

func TestParseToolCallsAndMaxTokens(t *testing.T) {
	r, err := parseDecoded([]byte(`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"},{"role":"user","content":"ok"}],"max_completion_tokens":77,"stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.maxTokens != 77 || !r.stream || !r.includeUsage {
		t.Fatalf("%+v", r)
	}
	if r.messages[0].Text != "[tool call c1] get({})" || r.messages[1].Text != "[tool result c1] 42" {
		t.Fatalf("texts %q %q", r.messages[0].Text, r.messages[1].Text)
	}
}

// parseDecoded parses a body and decodes all its messages, as the engine
// does for a context that holds none of them.
func parseDecoded(body []byte) (*chatRequest, *apiError) {
	r, err := parseChatRequest(body)
	if err != nil {
		return nil, err
	}
	if err := r.decodeAll(); err != nil {
		return nil, err
	}
	return r, nil
}

// FuzzParseChatRequest: no body crashes the parser (a panic, or a stack
// overflow on deep nesting) or gets anything but a 4xx; the scan that
// leaves messages undecoded accepts exactly the bodies the whole parse
// accepts, with the same messages and fields (but for a duplicate
// "messages" key, which only the scan refuses); and every accepted message
// can be stored and read back (a message nested 9,999 levels deep was
// accepted, stored, and made its context unreadable). The seeds, deep
// nesting included, run in every `go test`.
func FuzzParseChatRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"max_tokens":3}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","content":null,"tool_calls":[{}]}]}`))
	f.Add([]byte(` { "stream" : true , "messages" : [ {"role":"user","content":"a\"]}"} , {"role":"user","content":"b"} ] , "user":"u"} `))
	f.Add([]byte(`{"messages":[{"role":"user","content":"a"},],"model":"m"}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"a"}],"mess\u0061ges":[]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"a"} {"role":"user","content":"b"}]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"a"}]]}`))
	f.Add([]byte(`{"tools":[{"a":[[[]]]}],"messages":[{"role":"user","name":"n","content":"\\"}]}`))
	for _, d := range []int{100, 125, 126, 127, 9998, 9999, 10000} {
		f.Add([]byte(`{"messages":[{"role":"user","content":"deep","x":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}]}`))
	}
	f.Add([]byte(strings.Repeat("[", 1<<20)))
	f.Add([]byte(`{"messages":[{"role":"user","content":"\"[[[[","x":"\\"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseDecoded(body)
		if err == nil && len(r.messages) == 0 {
			t.Fatal("accepted a request without messages")
		}
		if err != nil && (err.status < 400 || err.status > 499 || err.message == "") {
			t.Fatalf("bad error %+v", err)
		}
		if _, res := scanBody(body, maxNesting); res == scanDuplicate {
			if err == nil {
				t.Fatal("accepted a duplicate messages key")
			}
			return
		}
		whole, werr := parseWholeRequest(body)
		if (err == nil) != (werr == nil) {
			t.Fatalf("scan: %v, whole parse: %v", err, werr)
		}
		if err != nil {
			return
		}
		if len(r.messages) != len(whole.messages) {
			t.Fatalf("%d messages, whole parse %d", len(r.messages), len(whole.messages))
		}
		for i, m := range r.messages {
			w := whole.messages[i]
			if m.Role != w.Role || m.Name != w.Name || m.Text != w.Text || m.Extra != w.Extra || string(m.Raw) != string(w.Raw) {
				t.Fatalf("message %d: %+v, whole parse %+v", i, m, w)
			}
		}
		if r.stream != whole.stream || r.includeUsage != whole.includeUsage || r.maxTokens != whole.maxTokens || r.user != whole.user || r.model != whole.model || r.tools != whole.tools {
			t.Fatalf("fields %+v, whole parse %+v", r, whole)
		}
		for i, m := range r.messages {
			rec, merr := json.Marshal(struct {
				Raw json.RawMessage `json:"raw"`
			}{m.Raw})
			var back struct {
				Raw json.RawMessage `json:"raw"`
			}
			if merr != nil || json.Unmarshal(rec, &back) != nil {
				t.Fatalf("message %d cannot be stored and read back: %v", i, merr)
			}
		}
	})
}

// TestStoreFailureAnswers: a store that did not answer in time is told
// apart from one that cannot be reached (both 503 store_unavailable), and
// neither message names a path or a key.
func TestStoreFailureAnswers(t *testing.T) {
	down := fmt.Errorf("%w: dial tcp: connection refused", memory.ErrUnavailable)
	slow := fmt.Errorf("%w: %w: context deadline exceeded", memory.ErrUnavailable, memory.ErrStoreTimeout)
	for _, c := range []struct {
		err  error
		want string
	}{{down, "cannot be reached"}, {slow, "did not answer in time"}} {
		a := storeFailure(c.err)
		if a.status != 503 || a.code != "store_unavailable" || !strings.Contains(a.message, c.want) {
			t.Errorf("%v: %d %s %q", c.err, a.status, a.code, a.message)
		}
	}
}

package proxy

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
)

func TestRenderBodyPlacesMemoryAndKeepsFields(t *testing.T) {
	cases := []struct {
		name, body string
		leading    int
		check      func(t *testing.T, msgs []gjson.Result)
	}{
		{"string system prompt", `{"temperature":0,"top_k":40,"x":{"y":[1,2.50]},"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"old"},{"role":"user","content":"new"}]}`, 1,
			func(t *testing.T, m []gjson.Result) {
				if len(m) != 2 || m[0].Get("content").Str != "Be brief.\n\nMEMORY" || m[1].Get("content").Str != "new" {
					t.Fatalf("messages %v", m)
				}
			}},
		{"parts system prompt", `{"messages":[{"role":"system","content":[{"type":"text","text":"Be brief."}]},{"role":"user","content":"old"},{"role":"user","content":"new"}]}`, 1,
			func(t *testing.T, m []gjson.Result) {
				parts := m[0].Get("content").Array()
				if len(parts) != 2 || parts[1].Get("text").Str != "MEMORY" {
					t.Fatalf("parts %v", parts)
				}
			}},
		{"no system prompt", `{"messages":[{"role":"user","content":"old"},{"role":"user","content":"new"}]}`, 0,
			func(t *testing.T, m []gjson.Result) {
				if len(m) != 2 || m[0].Get("role").Str != "system" || m[0].Get("content").Str != "MEMORY" {
					t.Fatalf("messages %v", m)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, aerr := parseChatRequest([]byte(c.body))
			if aerr != nil {
				t.Fatal(aerr)
			}
			w := &memory.Window{Leading: c.leading, TailFrom: len(req.messages) - 1, Memory: "MEMORY"}
			out, _, err := renderBody(req, w, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"temperature", "top_k", "x"} {
				if in := gjson.Get(c.body, f); in.Exists() && gjson.GetBytes(out, f).Raw != in.Raw {
					t.Fatalf("field %s changed: %s -> %s", f, in.Raw, gjson.GetBytes(out, f).Raw)
				}
			}
			c.check(t, gjson.GetBytes(out, "messages").Array())
		})
	}
}

func TestRenderBodyFiltersLiveTurn(t *testing.T) {
	pol, err := policy.Compile([]policy.Rule{{Name: "cards", Detector: "credit_card", Action: "redact", AllowScopes: []string{"pii"}}})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"pay","arguments":"{\"card\":\"4111 1111 1111 1111\"}"}}]},{"role":"user","content":"my card is 4111 1111 1111 1111"}]}`
	req, aerr := parseChatRequest([]byte(body))
	if aerr != nil {
		t.Fatal(aerr)
	}
	w := &memory.Window{TailFrom: 0}
	out, hits, err := renderBody(req, w, pol, []string{"basic"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "4111") || len(hits) != 2 {
		t.Fatalf("card leaked or hits %d: %s", len(hits), out)
	}
	out, hits, _ = renderBody(req, w, pol, []string{"pii"})
	if !strings.Contains(string(out), "4111 1111 1111 1111") || len(hits) != 0 {
		t.Fatalf("cleared caller lost the card: %s", out)
	}
}

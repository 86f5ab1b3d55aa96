package proxy

import (
	"strings"
	"testing"
)

// TestParseDryRun: a dry run's body stands for a chat request; a budget
// is a positive integer.
func TestParseDryRun(t *testing.T) {
	for _, tc := range []struct {
		body   string
		msgs   int
		budget int
		max    int
		bad    string
	}{
		{`{"query": "where is the key?"}`, 1, 0, 0, ""},
		{`{"query": "q", "budget": 900}`, 1, 900, 0, ""},
		{`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "max_tokens": 64}`, 2, 0, 64, ""},
		{`{"query": ""}`, 0, 0, 0, "query"},
		{`{"budget": 10}`, 0, 0, 0, "query"},
		{`{"query": "q", "budget": 1.5}`, 0, 0, 0, "budget"},
		{`{"query": "q", "budget": -3}`, 0, 0, 0, "budget"},
		{`{"messages": "nope"}`, 0, 0, 0, "messages"},
		{`[1, 2]`, 0, 0, 0, ""},
		{`{"query": "q"` + strings.Repeat(`,"x":[`, 200) + strings.Repeat("]", 200) + `}`, 0, 0, 0, ""},
	} {
		req, budget, aerr := parseDryRun([]byte(tc.body))
		if tc.msgs == 0 {
			if aerr == nil || aerr.status != 400 || (tc.bad != "" && aerr.param != tc.bad) {
				t.Errorf("%.60s: accepted, or %+v", tc.body, aerr)
			}
			continue
		}
		if aerr != nil || len(req.messages) != tc.msgs || budget != tc.budget || req.maxTokens != tc.max {
			t.Errorf("%.60s: %v, %d messages, budget %d, max_tokens %d", tc.body, aerr, len(req.messages), budget, req.maxTokens)
		}
	}
}

// FuzzParseDryRun: no body takes the parser down, and what it accepts is
// a chat request the chat path accepts too.
func FuzzParseDryRun(f *testing.F) {
	for _, s := range []string{`{"query": "q", "budget": 900}`, `{"messages": [{"role": "user", "content": "q"}], "tools": []}`, `{"query": 3}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, budget, aerr := parseDryRun(body)
		if aerr != nil {
			if aerr.status != 400 {
				t.Fatalf("status %d", aerr.status)
			}
			return
		}
		if budget < 0 || len(req.messages) == 0 {
			t.Fatalf("budget %d, %d messages", budget, len(req.messages))
		}
		if _, aerr := parseChatRequest(req.body); aerr != nil {
			t.Fatalf("the chat path refuses what the dry run accepted: %v", aerr)
		}
	})
}

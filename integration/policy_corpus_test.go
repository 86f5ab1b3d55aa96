package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/tidwall/gjson"
	"golang.org/x/text/unicode/norm"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// corpusCase is one line of testdata/policy_corpus.jsonl: a sensitive value
// written in one obfuscated form, placed in one field of a chat request.
type corpusCase struct {
	ID string `json:"id"`
	// Detector is the built-in detector that must find the value.
	Detector string `json:"detector"`
	// Form names the obfuscation (fullwidth, zero_width_space, dots, ...).
	Form string `json:"form"`
	// Field is where the client puts the value (see corpusBody).
	Field string `json:"field"`
	// Value is the value as the client writes it.
	Value string `json:"value"`
	// Canonical is the value written plainly; a leak is any text that folds
	// to it (see leakFold).
	Canonical string `json:"canonical"`
	// Also holds, written plainly, the other values of a case that writes
	// several next to each other (form "adjacent_…"): each one leaks too.
	Also []string `json:"also,omitempty"`
}

// Keys of the corpus configuration.
const (
	corpusBasic      = "sk-corpus-basic"
	corpusPII        = "sk-corpus-pii"
	corpusAdminBasic = "sk-corpus-admin-basic" // admin without the pii scope
	corpusAdminPII   = "sk-corpus-admin-pii"
)

// corpusConfig has one redact rule per built-in detector, cleared for pii.
func corpusConfig() string {
	return `auth:
  keys:
    - {key: ` + corpusBasic + `, tenant: acme, scopes: [basic]}
    - {key: ` + corpusPII + `, tenant: acme, scopes: [basic, pii]}
    - {key: ` + corpusAdminBasic + `, tenant: acme, scopes: [basic, admin]}
    - {key: ` + corpusAdminPII + `, tenant: acme, scopes: [basic, pii, admin]}
policy:
  rules:
    - {name: cards, detector: credit_card, allow_scopes: [pii]}
    - {name: ibans, detector: iban, allow_scopes: [pii]}
    - {name: emails, detector: email, allow_scopes: [pii]}
    - {name: keys, detector: api_key, allow_scopes: [pii]}
    - {name: phones, detector: phone, allow_scopes: [pii]}
    - {name: ips, detector: ip_address, allow_scopes: [pii]}
`
}

// loadCorpus reads the policy corpus.
func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "policy_corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []corpusCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("corpus line %d: %v", len(cases)+1, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// corpusFields are the places a case can put its value; the ones recalled
// from memory hold message text that memory keeps.
var corpusFields = map[string]struct{ recalled bool }{
	"content": {true}, "text_part": {true}, "name": {false}, "image_url": {false},
	"reasoning_content": {false}, "function_call_args": {true}, "tool_call_args": {true},
	"tool_call_args_object": {true}, "user": {false}, "system_prompt": {false}, "tool_result": {true},
}

// corpusBody builds the chat request that carries the case's value in its
// field.
func corpusBody(t *testing.T, c corpusCase) []byte {
	t.Helper()
	v := c.Value
	user := func(s string) map[string]any { return map[string]any{"role": "user", "content": s} }
	quote := func(m map[string]any) string {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	call := func(args any) map[string]any {
		return map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
			"id": "call_1", "type": "function", "function": map[string]any{"name": "lookup", "arguments": args}}}}
	}
	toolResult := func(s string) map[string]any {
		return map[string]any{"role": "tool", "tool_call_id": "call_1", "content": s}
	}
	body := map[string]any{"model": "fake-model"}
	var msgs []any
	switch c.Field {
	case "content":
		msgs = []any{user("Please remember this for later: " + v + " thanks.")}
	case "text_part":
		msgs = []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "Here it is."},
			map[string]any{"type": "text", "text": "Please keep " + v + " on file."}}}}
	case "name":
		msgs = []any{map[string]any{"role": "user", "name": v, "content": "Hello, please greet me by my name."}}
	case "image_url":
		msgs = []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "What is in this picture?"},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://img.example.net/u/" + v + "/photo.png"}}}}}
	case "reasoning_content":
		msgs = []any{user("What should I do next?"),
			map[string]any{"role": "assistant", "content": "You should rest.", "reasoning_content": "The user mentioned " + v + " earlier, so I must be careful."},
			user("Thanks, anything else?")}
	case "function_call_args":
		msgs = []any{user("Look up my account."),
			map[string]any{"role": "assistant", "content": nil, "function_call": map[string]any{"name": "lookup", "arguments": quote(map[string]any{"query": "account " + v})}},
			map[string]any{"role": "function", "name": "lookup", "content": "account found"},
			user("Great, what next?")}
	case "tool_call_args":
		msgs = []any{user("Look up my account."), call(quote(map[string]any{"query": v})), toolResult("found it"), user("Great, what next?")}
	case "tool_call_args_object":
		msgs = []any{user("Look up my account."), call(map[string]any{"query": v}), toolResult("found it"), user("Great, what next?")}
	case "user":
		msgs = []any{user("Hello there, how are you today?")}
		body["user"] = v
	case "system_prompt":
		msgs = []any{map[string]any{"role": "system", "content": "You are a helpful assistant. The account holder's reference is " + v + "."},
			user("What can you do for me today?")}
	case "tool_result":
		msgs = []any{user("Look up my account."), call(`{"query":"my account"}`), toolResult("lookup result: " + v), user("Great, what next?")}
	default:
		t.Fatalf("case %s: unknown field %q", c.ID, c.Field)
	}
	body["messages"] = msgs
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leakFold folds text the way a reader would see through obfuscation:
// compatibility forms (NFKC), invisible format characters and combining
// marks dropped, case folded, defanged "[at]", "[dot]" and "[.]" restored,
// ideographic full stops read as dots. It is written independently of the
// policy package's normalizer, so that a gap in one is not hidden by the
// same gap in the other.
func leakFold(s string) string {
	s = norm.NFKC.String(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Mn, r), unicode.Is(unicode.Me, r):
		case r == '\u3002':
			b.WriteByte('.')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	s = b.String()
	for _, d := range [][2]string{{"[at]", "@"}, {"(at)", "@"}, {"[dot]", "."}, {"(dot)", "."}, {"[.]", "."}, {"(.)", "."}} {
		s = strings.ReplaceAll(s, d[0], d[1])
	}
	return s
}

// stripped keeps letters, digits and '@' of folded text: separators of
// every kind (spaces, dashes, dots, colons) are how a value is obfuscated.
func stripped(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '@' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// spaced turns every run of separators of folded text into one space.
func spaced(s string) string {
	var b strings.Builder
	sep := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '@' {
			if sep && b.Len() > 0 {
				b.WriteByte(' ')
			}
			sep = false
			b.WriteRune(r)
			continue
		}
		sep = true
	}
	return " " + b.String() + " "
}

// leaks reports whether text holds one of the case's values in any form
// a reader recovers: long values compared without separators, short ones
// (IPv4 addresses) as separated groups.
func (c corpusCase) leaks(text string) bool {
	f := leakFold(text)
	for _, v := range append([]string{c.Canonical}, c.Also...) {
		canon := leakFold(v)
		if s := stripped(canon); len(s) >= 10 {
			if strings.Contains(stripped(f), s) {
				return true
			}
		} else if strings.Contains(spaced(f), spaced(canon)) {
			return true
		}
	}
	return false
}

// jsonStrings returns every string of a JSON document, object keys
// included, recursing into strings that are JSON documents themselves
// (tool-call arguments).
func jsonStrings(raw []byte) []string {
	var out []string
	var walk func(v gjson.Result, depth int)
	walk = func(v gjson.Result, depth int) {
		switch {
		case v.IsObject() || v.IsArray():
			v.ForEach(func(k, x gjson.Result) bool {
				if k.Type == gjson.String {
					out = append(out, k.Str)
				}
				walk(x, depth)
				return true
			})
		case v.Type == gjson.String:
			out = append(out, v.Str)
			if depth < 4 && gjson.Valid(v.Str) {
				if inner := gjson.Parse(v.Str); inner.IsObject() || inner.IsArray() {
					walk(inner, depth+1)
				}
			}
		case v.Type == gjson.Number:
			out = append(out, v.Raw)
		}
	}
	walk(gjson.ParseBytes(raw), 0)
	return out
}

// leaksJSON reports whether any string of a JSON document leaks the value.
func (c corpusCase) leaksJSON(raw []byte) bool {
	for _, s := range jsonStrings(raw) {
		if c.leaks(s) {
			return true
		}
	}
	return false
}

// holdsJSON reports whether a string of a JSON document holds the value
// exactly as the client wrote it.
func (c corpusCase) holdsJSON(raw []byte) bool {
	for _, s := range jsonStrings(raw) {
		if strings.Contains(s, c.Value) {
			return true
		}
	}
	return false
}

// corpusTally counts, per channel, the cases whose value reached a reader
// not cleared for it.
type corpusTally struct {
	mu    sync.Mutex
	leaks map[string][]string // channel -> case ids
	fails map[string][]string // cleared-caller checks that did not get the original
}

func (ct *corpusTally) add(m map[string][]string, channel, id string) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	m[channel] = append(m[channel], id)
}

// TestPolicyCorpus runs every case of testdata/policy_corpus.jsonl through
// the real binary: a caller without the pii scope sends the value in its
// field, and the value must not reach the upstream in that turn (live), nor
// in a later chat that recalls the message from memory (recall), nor an
// admin without the pii scope through the message listing, the window dry
// run or the statistics (admin). A caller with the pii scope gets the
// original forwarded and recalled, and an admin with it lists it.
func TestPolicyCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 150 {
		t.Fatalf("the corpus has %d cases, want at least 150", len(cases))
	}
	fake := newFake(t, fakellama.Options{NCtx: 8192})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: corpusConfig()})
	tally := &corpusTally{leaks: map[string][]string{}, fails: map[string][]string{}}

	// The fake records requests in arrival order: a mutex keeps each chat
	// and its upstream request paired while workers run in parallel.
	var chatMu sync.Mutex
	send := func(t *testing.T, body []byte, hdr map[string]string) ([]byte, error) {
		chatMu.Lock()
		defer chatMu.Unlock()
		n := len(fake.Requests())
		res, err := p.chat(body, hdr)
		if err != nil {
			return nil, err
		}
		if res.Status != http.StatusOK {
			return nil, fmt.Errorf("status %d: %s", res.Status, res.Body)
		}
		reqs := fake.Requests()
		if len(reqs) != n+1 {
			return nil, fmt.Errorf("upstream saw %d requests for one chat", len(reqs)-n)
		}
		return reqs[n].Body, nil
	}
	question := func() []byte {
		return chatBody(t, []msg{{"user", "What do you remember about my account, my name and everything I told you before?"}}, map[string]any{"max_tokens": 64})
	}

	run := func(t *testing.T, i int, c corpusCase) {
		id := fmt.Sprintf("corpus-%03d", i)
		if _, ok := corpusFields[c.Field]; !ok {
			t.Errorf("%s: unknown field %q", c.ID, c.Field)
			return
		}
		body := corpusBody(t, c)
		// Live, not cleared.
		up, err := send(t, body, as(corpusBasic, id, ""))
		if err != nil {
			t.Errorf("%s: live chat: %v", c.ID, err)
			return
		}
		if c.leaksJSON(up) {
			tally.add(tally.leaks, "live", c.ID)
		}
		// Recall in a new chat, not cleared.
		up, err = send(t, question(), as(corpusBasic, id, "recall"))
		if err != nil {
			t.Errorf("%s: recall chat: %v", c.ID, err)
			return
		}
		if c.leaksJSON(up) {
			tally.add(tally.leaks, "recall", c.ID)
		}
		// The admin view of an admin without pii.
		for _, rt := range []struct{ what, method, path, body string }{
			{"messages", "GET", "/megacontext/v1/contexts/" + id + "/messages?limit=1000", ""},
			{"window", "POST", "/megacontext/v1/contexts/" + id + "/window", `{"query":"account name reference details everything I told you"}`},
			{"stats", "GET", "/megacontext/v1/contexts/" + id, ""},
		} {
			var b []byte
			if rt.body != "" {
				b = []byte(rt.body)
			}
			r, err := p.do(rt.method, rt.path, b, as(corpusAdminBasic, "", ""))
			if err != nil || r.Status != http.StatusOK {
				t.Errorf("%s: admin %s: %v %v", c.ID, rt.what, err, r)
				return
			}
			if c.leaksJSON(r.Body) {
				tally.add(tally.leaks, "admin-"+rt.what, c.ID)
			}
		}
		// A caller cleared for pii gets the original forwarded and recalled.
		up, err = send(t, body, as(corpusPII, id, "pii"))
		if err != nil {
			t.Errorf("%s: pii chat: %v", c.ID, err)
			return
		}
		if !c.holdsJSON(up) {
			tally.add(tally.fails, "pii-live", c.ID)
		}
		if corpusFields[c.Field].recalled {
			up, err = send(t, question(), as(corpusPII, id, "recall-pii"))
			if err != nil {
				t.Errorf("%s: pii recall chat: %v", c.ID, err)
				return
			}
			if !c.leaksJSON(up) {
				tally.add(tally.fails, "pii-recall", c.ID)
			}
		}
		if c.Field != "user" && c.Field != "image_url" && c.Field != "reasoning_content" {
			r, err := p.do("GET", "/megacontext/v1/contexts/"+id+"/messages?limit=1000", nil, as(corpusAdminPII, "", ""))
			if err != nil || r.Status != http.StatusOK {
				t.Errorf("%s: pii admin messages: %v %v", c.ID, err, r)
				return
			}
			if !c.leaksJSON(r.Body) {
				tally.add(tally.fails, "pii-admin-messages", c.ID)
			}
		}
	}

	const workers = 4
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				run(t, i, cases[i])
			}
		}()
	}
	for i := range cases {
		next <- i
	}
	close(next)
	wg.Wait()

	channels := []string{"live", "recall", "admin-messages", "admin-window", "admin-stats"}
	t.Logf("policy corpus: %d cases", len(cases))
	for _, ch := range channels {
		t.Logf("leaks %-15s %3d", ch, len(tally.leaks[ch]))
	}
	for _, ch := range []string{"pii-live", "pii-recall", "pii-admin-messages"} {
		t.Logf("originals missing %-19s %3d", ch, len(tally.fails[ch]))
	}
	for _, ch := range channels {
		if ids := tally.leaks[ch]; len(ids) > 0 {
			sort.Strings(ids)
			t.Errorf("%d cases leak %s: %v", len(ids), ch, ids)
		}
	}
	for ch, ids := range tally.fails {
		sort.Strings(ids)
		t.Errorf("%d cases: a cleared caller did not get the original (%s): %v", len(ids), ch, ids)
	}
}

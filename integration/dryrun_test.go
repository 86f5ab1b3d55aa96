package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// preloadHistory stores chats of many turns in context id through the
// proxy, each chat's whole history in one request, and returns the facts
// planted (one code per chat) as questions about them.
func preloadHistory(t *testing.T, p *proxy, id string, chats, turns int, seed uint64) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	words := strings.Fields(`garden river mountain story window paper music kitchen travel winter summer market bridge
forest village teacher student engine yellow orange quiet gentle ancient modern coffee bread letter journey harbor
island valley castle lantern mirror pocket ribbon saddle thunder dentist bicycle violin passport recipe`)
	filler := func(n int) string {
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(words[r.IntN(len(words))] + " ")
			if r.IntN(10) == 0 {
				sb.WriteString(". ")
			}
		}
		return sb.String()
	}
	var questions []string
	for c := 0; c < chats; c++ {
		msgs := []msg{{"system", "You are a helpful assistant."}}
		for i := 0; i < turns; i++ {
			u := filler(15 + r.IntN(40))
			if i == turns/2 {
				thing := words[r.IntN(len(words))]
				code := fmt.Sprintf("%c%c-%04d-%c%c", 'A'+r.IntN(26), 'A'+r.IntN(26), r.IntN(10000), 'A'+r.IntN(26), 'A'+r.IntN(26))
				u = fmt.Sprintf("The code for my %s locker is %s. ", thing, code) + u
				questions = append(questions, fmt.Sprintf("What is the code for my %s locker?", thing))
			}
			msgs = append(msgs, msg{"user", u}, msg{"assistant", filler(20 + r.IntN(50))})
		}
		msgs = append(msgs, msg{"user", "Thanks, that is all for today."})
		p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 64}), map[string]string{"X-MegaContext-Id": id})
	}
	return questions
}

// TestDryRunEqualsLive: the dry run and the live request go through one
// function with one budget: over 200 random question and budget pairs, the
// dry run's messages are byte for byte what the upstream receives when the
// same question is asked live with max_tokens leaving the same budget, and
// the budget reads the same in the dry run and in the live answer's header.
func TestDryRunEqualsLive(t *testing.T) {
	fake := newFake(t, fakellama.Options{NCtx: 4096})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	const id = "dry-live"
	questions := preloadHistory(t, p, id, 12, 24, 7)
	questions = append(questions, "what did we say about the castle and the lantern?", "remind me of the violin",
		"Which passport and bicycle plans did I mention?", "hello")
	r := rand.New(rand.NewPCG(8, 9))
	const nCtx, margin, pairs = 4096, 32, 200
	equal := 0
	lastQuestion := ""
	for i := 0; i < pairs; i++ {
		q := questions[r.IntN(len(questions))]
		if r.IntN(3) == 0 {
			q += fmt.Sprintf(" (%d)", r.IntN(1000)) // a question never asked before
		}
		budget := 160 + r.IntN(nCtx-margin-160-64)
		ask := []msg{{"user", q}}
		dryBody := fmt.Sprintf(`{"query": %s, "budget": %d}`, strconv.Quote(q), budget)
		if r.IntN(4) == 0 {
			// The messages form: a system prompt of the client's own.
			ask = []msg{{"system", "Answer in one line."}, {"user", q}}
			dryBody = fmt.Sprintf(`{"messages": %s, "budget": %d}`, gjson.GetBytes(chatBody(t, ask, nil), "messages").Raw, budget)
		}
		dry := p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(dryBody), nil)
		if dry.Status != http.StatusOK {
			t.Fatalf("pair %d: dry run %d: %s", i, dry.Status, dry.Body)
		}
		if got := gjson.GetBytes(dry.Body, "budget").Int(); got != int64(budget) {
			t.Fatalf("pair %d: dry run budget %d, asked %d", i, got, budget)
		}
		n := len(fake.Requests())
		lastQuestion = q
		live := p.mustChat(t, chatBody(t, ask, map[string]any{"max_tokens": nCtx - margin - budget}), map[string]string{"X-MegaContext-Id": id})
		if got := live.Header.Get("X-MegaContext-Budget-Tokens"); got != strconv.Itoa(budget) {
			t.Fatalf("pair %d: live X-MegaContext-Budget-Tokens %s, dry-run budget %d", i, got, budget)
		}
		for _, h := range []string{"X-MegaContext-Window-Tokens", "X-MegaContext-Expanded", "X-MegaContext-Memory-Tokens"} {
			if dry.Header.Get(h) != live.Header.Get(h) {
				t.Errorf("pair %d: %s dry %s, live %s", i, h, dry.Header.Get(h), live.Header.Get(h))
			}
		}
		reqs := fake.Requests()
		if len(reqs) != n+1 {
			t.Fatalf("pair %d: the upstream got %d requests, want 1", i, len(reqs)-n)
		}
		upstream := gjson.GetBytes(reqs[n].Body, "messages").Raw
		dryMsgs := gjson.GetBytes(dry.Body, "messages").Raw
		if upstream != dryMsgs {
			at := 0
			for at < len(upstream) && at < len(dryMsgs) && upstream[at] == dryMsgs[at] {
				at++
			}
			from := max(0, at-300)
			t.Fatalf("pair %d (%q at %d): the dry run's messages differ from what the upstream received, from byte %d:\ndry run:  %.600s\nupstream: %.600s", i, q, budget, at, dryMsgs[from:], upstream[from:])
		}
		equal++
	}
	t.Logf("dry run equals live byte for byte in %d of %d question and budget pairs", equal, pairs)

	// The last 20 live windows are kept, newest first, explained.
	ws := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/windows", nil, nil)
	data := gjson.GetBytes(ws.Body, "data").Array()
	if ws.Status != http.StatusOK || len(data) != 20 {
		t.Fatalf("windows: %d, %d kept: %.500s", ws.Status, len(data), ws.Body)
	}
	if q := data[0].Get("question").Str; q != lastQuestion {
		t.Errorf("newest kept window asked %q, the last question was %q", q, lastQuestion)
	}
	for i, w := range data {
		if w.Get("budget").Int() <= 0 || w.Get("upstream_status").Int() != 200 || len(w.Get("entries").Array()) == 0 || !strings.HasPrefix(w.Get("memory").Str, "<memory>") {
			t.Errorf("kept window %d: %.300s", i, w.Raw)
		}
		for _, en := range w.Get("entries").Array() {
			if en.Get("reason").Str == "" {
				t.Errorf("kept window %d: entry without a reason: %s", i, en.Raw)
			}
		}
	}
	metrics := p.mustDo(t, "GET", "/metrics", nil, nil)
	if !strings.Contains(string(metrics.Body), "megacontext_focus_windows_total 212") {
		t.Errorf("/metrics does not count the 212 kept windows:\n%s", grepLines(string(metrics.Body), "megacontext_focus"))
	}

	// One debug line per live request says what the window held, never text.
	log, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, line := range strings.Split(string(log), "\n") {
		if !strings.Contains(line, "msg=window ") {
			continue
		}
		lines++
		for _, field := range []string{"context=dry-live", "budget=", "window_tokens=", "expanded=", "overhead_ms=", "upstream_status=200"} {
			if !strings.Contains(line, field) {
				t.Errorf("window log line lacks %s: %s", field, line)
			}
		}
		for _, text := range []string{"locker", "castle", "Thanks"} {
			if strings.Contains(line, text) {
				t.Errorf("window log line holds text %q: %s", text, line)
			}
		}
	}
	if want := 12 + pairs; lines != want {
		t.Errorf("%d window log lines, want one per live request (%d)", lines, want)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

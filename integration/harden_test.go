package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// Regression tests of issue 10's defects, through the real binary.

// storedMessage is one message of GET .../messages.
type storedMessage struct {
	Seq     int64  `json:"seq"`
	Role    string `json:"role"`
	Text    string `json:"text"`
	Partial bool   `json:"partial"`
}

// messages returns every stored message of a context (paging through the
// admin API).
func (p *proxy) messages(t *testing.T, id string) []storedMessage {
	t.Helper()
	var out []storedMessage
	for {
		r := p.mustDo(t, "GET", fmt.Sprintf("/megacontext/v1/contexts/%s/messages?from=%d&limit=1000", url.PathEscape(id), len(out)), nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("messages of %s: status %d: %s", id, r.Status, r.Body)
		}
		var page struct {
			Data []storedMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatalf("messages of %s: %v", id, err)
		}
		out = append(out, page.Data...)
		if len(page.Data) < 1000 {
			return out
		}
	}
}

// alive fails the test if the proxy no longer answers /healthz.
func (p *proxy) alive(t *testing.T, what string) {
	t.Helper()
	r, err := p.do("GET", "/healthz", nil, nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("%s: the proxy is down: %v", what, err)
	}
}

// nestedBody is a chat body whose last message has a field nested depth
// levels below the message object.
func nestedBody(user string, depth int) []byte {
	return []byte(`{"model":"m","user":"` + user + `","messages":[{"role":"user","content":"hello"},{"role":"user","content":"deep","x":` +
		strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}]}`)
}

// TestDeepNestingRefused: a message field nested 10,000 levels killed the
// process (a panic encoding it), one nested 9,999 levels was stored and made
// its context unreadable after a restart, and a body of 16 MiB of '['
// overflowed the parser's stack. All are refused with a 400 now, nothing is
// stored, and the context stays readable.
func TestDeepNestingRefused(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	p.mustChat(t, chatBody(t, []msg{{"user", "hello"}}, map[string]any{"user": "deep"}), nil)
	p.waitMessages(t, "deep", 2)

	for _, body := range [][]byte{
		nestedBody("deep", 9999),
		nestedBody("deep", 10000),
		[]byte(strings.Repeat("[", 16<<20-64)),
		[]byte(`{"messages":[{"role":"user","content":"x"}],"tools":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat("}", 200) + `}`),
	} {
		r, err := p.do("POST", "/v1/chat/completions", body, nil)
		if err != nil {
			t.Fatalf("%d-byte body: %v", len(body), err)
		}
		if r.Status != http.StatusBadRequest {
			t.Errorf("%d-byte body: status %d, want 400: %.200s", len(body), r.Status, r.Body)
		}
		if e := checkOpenAIError(t, "deep body", r.Body); e.Get("code").Str != "json_too_deep" {
			t.Errorf("code %s, want json_too_deep", e.Get("code").Raw)
		}
		p.alive(t, "after a deeply nested body")
	}
	// Nesting a real request needs is fine.
	p.mustChat(t, nestedBody("deep", 100), nil)
	p.waitMessages(t, "deep", 4)

	p.restartHard()
	if st, ok := p.stats(t, "deep"); !ok || st.Messages != 4 {
		t.Fatalf("after restart: %+v (found %v), want 4 messages", st, ok)
	}
	p.mustChat(t, chatBody(t, []msg{{"user", "hello"}, {"assistant", "Noted: hello"}, {"user", "still there?"}}, map[string]any{"user": "deep"}), nil)
}

// TestMaxMessages: limits.max_messages bounds one request's messages with a
// clear 400 (a 4 MB request of 100,000 tiny messages took 4.3 s).
func TestMaxMessages(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "limits:\n  max_messages: 50\n"})
	msgs := make([]msg, 51)
	for i := range msgs {
		msgs[i] = msg{[]string{"user", "assistant"}[i%2], fmt.Sprintf("message %d", i)}
	}
	r := p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, msgs, map[string]any{"user": "many"}), nil)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("51 messages: status %d, want 400: %s", r.Status, r.Body)
	}
	e := checkOpenAIError(t, "51 messages", r.Body)
	if e.Get("param").Str != "messages" || !strings.Contains(e.Get("message").Str, "at most 50") {
		t.Errorf("51 messages: unclear error %s", r.Body)
	}
	if _, found := p.stats(t, "many"); found || len(fake.Requests()) != 0 {
		t.Error("a refused request was stored or forwarded")
	}
	p.mustChat(t, chatBody(t, msgs[:49], map[string]any{"user": "many"}), nil)
}

// TestErrorBodiesLeakNothing: the answer to a request whose headers are
// too large quoted the raw headers, Authorization included.
func TestErrorBodiesLeakNothing(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	const secret = "sk-very-secret-key-0123456789"
	for _, c := range []struct {
		name, request string
		status        int
	}{
		{"oversized header", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nX-Pad: " + strings.Repeat("p", 64<<10) + "\r\n\r\n", 431},
		{"malformed header", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBroken header line\r\nContent-Length: zz\r\n\r\n", 400},
	} {
		status, body := rawHTTP(t, p, c.request)
		if status != c.status {
			t.Errorf("%s: status %d, want %d: %.300s", c.name, status, c.status, body)
		}
		if strings.Contains(body, secret) || strings.Contains(body, "X-Pad") {
			t.Errorf("%s: the error echoes the request: %.300s", c.name, body)
		}
		checkOpenAIError(t, c.name, []byte(body))
	}
}

// rawHTTP writes one raw request and returns the status and body of the
// answer.
func rawHTTP(t *testing.T, p *proxy, request string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL(), "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	_, _ = conn.Write([]byte(request)) // the server may answer before reading it all
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		sb.Write(buf[:n])
		if err != nil || strings.Contains(sb.String(), "}}") {
			break
		}
	}
	resp := sb.String()
	status := 0
	if f := strings.Fields(resp); len(f) > 1 {
		status, _ = strconv.Atoi(f[1])
	}
	body := resp
	if i := strings.Index(resp, "\r\n\r\n"); i >= 0 {
		body = resp[i+4:]
	}
	return status, body
}

// TestContextIDsWithDotSegments: ids with "../" segments were accepted
// through the header but unreachable through the admin API, whose paths
// fasthttp normalized. They are reachable, with the id escaped as one path
// segment.
func TestContextIDsWithDotSegments(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	ids := []string{"../../etc/passwd", "a/../b", "..", ".", "./x/..", "%2e%2e"}
	for _, id := range ids {
		p.mustChat(t, chatBody(t, []msg{{"user", "remember " + id}}, nil), map[string]string{"X-MegaContext-Id": id})
	}
	for _, id := range ids {
		esc := strings.ReplaceAll(url.PathEscape(id), ".", "%2E")
		r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+esc, nil, nil)
		if r.Status != http.StatusOK || gjson.GetBytes(r.Body, "id").Str != id {
			t.Errorf("stats of %q: status %d: %s", id, r.Status, r.Body)
			continue
		}
		if ms := p.messages(t, id); len(ms) != 2 || ms[0].Text != "remember "+id {
			t.Errorf("messages of %q: %+v", id, ms)
		}
		if r := p.mustDo(t, "DELETE", "/megacontext/v1/contexts/"+esc, nil, nil); r.Status != http.StatusOK {
			t.Errorf("delete %q: status %d: %s", id, r.Status, r.Body)
		}
	}
	if left := p.listIDs(t); len(left) != 0 {
		t.Errorf("left after deleting every context: %q", left)
	}
}

// TestDefaultMaxTokensForwarded: a request without max_tokens was
// forwarded without one, and a local model generated until its context
// was full; the output reservation the budget assumed is forwarded now.
func TestDefaultMaxTokensForwarded(t *testing.T) {
	fake := newFake(t, fakellama.Options{NCtx: 4096})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "memory:\n  default_max_tokens: 300\n"})
	p.mustChat(t, chatBody(t, []msg{{"user", "no limit given"}}, map[string]any{"user": "mt"}), nil)
	p.mustChat(t, chatBody(t, []msg{{"user", "limit given"}}, map[string]any{"user": "mt2", "max_completion_tokens": 77}), nil)
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if got := gjson.GetBytes(reqs[0].Body, "max_tokens"); got.Int() != 300 {
		t.Errorf("no max_tokens: forwarded %s, want 300", got.Raw)
	}
	if got := gjson.GetBytes(reqs[1].Body, "max_tokens"); got.Exists() || reqs[1].MaxTokens != 77 {
		t.Errorf("max_completion_tokens 77: forwarded max_tokens %s, limit %d", got.Raw, reqs[1].MaxTokens)
	}
}

// TestRefusedTurnNotStored: the message of a 400 context_length_exceeded
// was stored anyway, and kept coming back in later windows.
func TestRefusedTurnNotStored(t *testing.T) {
	fake := newFake(t, fakellama.Options{NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	history := []msg{{"user", "short start"}}
	res := p.mustChat(t, chatBody(t, history, map[string]any{"user": "refused"}), nil)
	history = append(history, msg{"assistant", res.Content})
	before, _ := p.stats(t, "refused")
	r := p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, append(history, msg{"user", strings.Repeat("lorem ipsum dolor ", 700)}), map[string]any{"user": "refused"}), nil)
	if r.Status != http.StatusBadRequest || gjson.GetBytes(r.Body, "error.code").Str != "context_length_exceeded" {
		t.Fatalf("too long: status %d: %s", r.Status, r.Body)
	}
	if after, _ := p.stats(t, "refused"); after.Messages != before.Messages {
		t.Errorf("refused turn stored: %d messages before, %d after", before.Messages, after.Messages)
	}
}

// TestMakeRunStopsOnSIGTERM: `make run` ran `go run`, and a SIGTERM left
// the real server listening; make now execs the binary.
func TestMakeRunStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary with make")
	}
	makePath, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fake := newFake(t, fakellama.Options{})
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(makePath, "-s", "-C", root, "run", "BIN="+filepath.Join(dir, "megacontext"), "UPSTREAM="+fake.URL(),
		fmt.Sprintf("ARGS=--listen 127.0.0.1:%d --data %s", port, filepath.Join(dir, "data")))
	cmd.Env = cleanEnv()
	logf, err := os.Create(filepath.Join(dir, "make.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	listening := func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	deadline := time.Now().Add(2 * time.Minute) // make builds the binary first
	for !listening() {
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("make run exited before listening:\n%s", b)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			t.Fatal("make run not listening after 2 minutes")
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("make run still running 15 s after SIGTERM")
	}
	waitFor(t, "the server to stop listening", func() bool { return !listening() })
}

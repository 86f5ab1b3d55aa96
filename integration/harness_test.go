package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
)

// binPath is the megacontext binary built once by TestMain.
var binPath string

// modulePath is the module whose root TestMain builds.
const modulePath = "github.com/megacontext/megacontext"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "megacontext-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "megacontext")
	cmd := exec.Command("go", "build", "-o", binPath, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build: %v\n%s", err, out)
		return 1
	}
	defer pgtest.StopShared()
	return m.Run()
}

// repoRoot walks up from the working directory to the go.mod of the module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of " + modulePath + " not found above the working directory")
		}
		dir = parent
	}
}

// Generous bounds: the tests must not flake on a loaded 2-core machine.
const (
	startTimeout = 30 * time.Second
	// A real llama.cpp server (llamacpp_test.go) on a loaded 2-core machine
	// has taken over 30 s for one 2048-token turn.
	requestTimeout = 2 * time.Minute
	pollTimeout    = 15 * time.Second
)

// proxyOptions configure one megacontext process.
type proxyOptions struct {
	// Upstream is the --upstream URL.
	Upstream string
	// DataDir is the --data directory; empty makes a fresh one.
	DataDir string
	// Config, when set, is written to a YAML file passed with --config.
	Config string
	// Args are extra serve flags.
	Args []string
	// Env are extra KEY=VALUE environment variables of the process, added
	// after the MEGACONTEXT_* variables of the test's own environment are
	// removed.
	Env []string
}

// proxy is a running megacontext process.
type proxy struct {
	t       *testing.T
	opts    proxyOptions
	workDir string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  <-chan struct{}
	addr    string
	url     string
	starts  int
	logFile *os.File
}

// startProxy runs the binary with serve and waits until /healthz answers.
// The process is stopped at cleanup; its log is shown when the test failed.
func startProxy(t *testing.T, opts proxyOptions) *proxy {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(t.TempDir(), "data")
	}
	p := &proxy{t: t, opts: opts, workDir: t.TempDir()}
	p.logPath = filepath.Join(p.workDir, "megacontext.log")
	if opts.Config != "" {
		path := filepath.Join(p.workDir, "config.yaml")
		if err := os.WriteFile(path, []byte(opts.Config), 0o644); err != nil {
			t.Fatal(err)
		}
		p.opts.Args = append([]string{"--config", path}, p.opts.Args...)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("megacontext log (tail):\n%s", b)
		}
	})
	p.start()
	return p
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPortURL returns the URL of a loopback port nobody listens on.
func closedPortURL(t *testing.T) string {
	return fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
}

// start launches the process on a free port, retrying with another port
// when the process exits before it is ready (e.g. the port was taken).
func (p *proxy) start() {
	t := p.t
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		err := p.launch()
		if err == nil {
			return
		}
		lastErr = err
		t.Logf("megacontext start attempt %d: %v", attempt+1, err)
	}
	t.Fatalf("megacontext did not start: %v", lastErr)
}

func (p *proxy) launch() error {
	port := freePort(p.t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append([]string{"serve", "--listen", addr, "--upstream", p.opts.Upstream, "--data", p.opts.DataDir, "--log-level", "debug"}, p.opts.Args...)
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start: %s %s\n", binPath, strings.Join(args, " "))
	cmd := exec.Command(binPath, args...)
	cmd.Dir = p.workDir // no ./megacontext.yaml is picked up by accident
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(cleanEnv(), p.opts.Env...)
	exited, err := startProcess(cmd, logf)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd, p.exited, p.addr, p.url, p.logFile = cmd, exited, addr, "http://"+addr, logf
	p.starts++
	p.mu.Unlock()
	if err := waitHealthy(p.url+"/healthz", exited, startTimeout); err != nil {
		p.kill(syscall.SIGKILL) // releases the log file
		return fmt.Errorf("%w (%v)", err, cmd.ProcessState)
	}
	return nil
}

// startProcess starts cmd (its output already pointed at logf, which is
// closed when the start fails) and returns a channel closed once it exited.
func startProcess(cmd *exec.Cmd, logf *os.File) (<-chan struct{}, error) {
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return exited, nil
}

// waitHealthy polls url (every 25 ms, under a deadline) until it answers
// 200; it fails when the process exits first or timeout passes.
func waitHealthy(url string, exited <-chan struct{}, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process exited before %s answered", url)
		default:
		}
		if resp, err := hc.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
		case <-time.After(25 * time.Millisecond): // poll interval
		}
	}
	return fmt.Errorf("%s not ready within %v", url, timeout)
}

// cleanEnv is the environment without MEGACONTEXT_* variables, which
// would override flags and config of the test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MEGACONTEXT_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill sends sig and waits for the process to exit (bounded).
func (p *proxy) kill(sig syscall.Signal) bool {
	p.mu.Lock()
	cmd, exited, logf := p.cmd, p.exited, p.logFile
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	defer logf.Close()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return false
	}
}

// stop ends the process gracefully (SIGTERM), with SIGKILL as fallback.
func (p *proxy) stop() { p.kill(syscall.SIGTERM) }

// restartHard kills the process with SIGKILL (no shutdown, no flush) and
// starts a new one on the same data directory.
func (p *proxy) restartHard() {
	p.t.Helper()
	p.kill(syscall.SIGKILL)
	p.start()
}

// URL is the proxy's base URL (no /v1).
func (p *proxy) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// httpClient is shared by the tests; streaming requests use contexts.
var httpClient = &http.Client{Timeout: 0, Transport: &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}}

// response is a complete HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends one request and reads the whole answer.
func (p *proxy) do(method, path string, body []byte, hdr map[string]string) (*response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.URL()+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// mustDo is do that fails the test on a transport error.
func (p *proxy) mustDo(t *testing.T, method, path string, body []byte, hdr map[string]string) *response {
	t.Helper()
	r, err := p.do(method, path, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// chatResult is a chat completion as the client saw it.
type chatResult struct {
	response
	// Content is the assistant text (assembled from deltas when streamed).
	Content string
	// Events counts the SSE data events of a stream, [DONE] included.
	Events int
	// Done reports that a stream ended with [DONE].
	Done bool
}

// chat posts a chat completion body and reads the whole answer; streamed
// answers are parsed as SSE and their deltas assembled.
func (p *proxy) chat(body []byte, hdr map[string]string) (*chatResult, error) {
	r, err := p.do("POST", "/v1/chat/completions", body, hdr)
	if err != nil {
		return nil, err
	}
	res := &chatResult{response: *r}
	if r.Status != http.StatusOK {
		return res, nil
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(r.Body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var sb strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data:") {
				continue
			}
			data := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			res.Events++
			if data == "[DONE]" {
				res.Done = true
				continue
			}
			if !gjson.Valid(data) {
				return res, fmt.Errorf("invalid SSE data %q", data)
			}
			sb.WriteString(gjson.Get(data, "choices.0.delta.content").Str)
		}
		res.Content = sb.String()
		if !res.Done {
			return res, errors.New("stream ended without [DONE]")
		}
		return res, nil
	}
	if !gjson.ValidBytes(r.Body) {
		return res, fmt.Errorf("invalid JSON answer %q", r.Body)
	}
	res.Content = gjson.GetBytes(r.Body, "choices.0.message.content").Str
	return res, nil
}

// mustChat is chat that fails the test on a transport error or a status
// other than 200.
func (p *proxy) mustChat(t *testing.T, body []byte, hdr map[string]string) *chatResult {
	t.Helper()
	res, err := p.chat(body, hdr)
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("chat: status %d: %s", res.Status, res.Body)
	}
	return res
}

// msg is one chat message of a test client.
type msg struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatBody builds a chat completion body.
func chatBody(t *testing.T, msgs []msg, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"model": "fake-model", "messages": msgs}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// contextStats is the part of GET /megacontext/v1/contexts/{id} the tests read.
type contextStats struct {
	ID         string `json:"id"`
	Messages   int    `json:"messages"`
	Tokens     int    `json:"tokens"`
	Blocks     int    `json:"blocks"`
	Threads    int    `json:"threads"`
	Superseded int    `json:"superseded_messages"`
	Partial    int    `json:"partial_messages"`
}

// stats returns the statistics of a MegaContext; found is false on 404.
func (p *proxy) stats(t *testing.T, id string) (st contextStats, found bool) {
	t.Helper()
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id, nil, nil)
	if r.Status == http.StatusNotFound {
		return st, false
	}
	if r.Status != http.StatusOK {
		t.Fatalf("stats %s: status %d: %s", id, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatalf("stats %s: %v: %s", id, err, r.Body)
	}
	return st, true
}

// waitMessages polls the stats of id until they report want messages
// (responses of streams are stored right after the stream ends, so a
// client may be a moment ahead of the store).
func (p *proxy) waitMessages(t *testing.T, id string, want int) contextStats {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	var st contextStats
	for {
		var found bool
		st, found = p.stats(t, id)
		if found && st.Messages == want {
			return st
		}
		if found && st.Messages > want {
			t.Fatalf("context %s has %d messages, want %d", id, st.Messages, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("context %s: %d messages (found %v) after %v, want %d", id, st.Messages, found, pollTimeout, want)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// listIDs returns the ids of GET /megacontext/v1/contexts.
func (p *proxy) listIDs(t *testing.T) []string {
	t.Helper()
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list: status %d: %s", r.Status, r.Body)
	}
	if !gjson.GetBytes(r.Body, "data").IsArray() {
		t.Fatalf("list: no data array: %s", r.Body)
	}
	var ids []string
	for _, c := range gjson.GetBytes(r.Body, "data").Array() {
		ids = append(ids, c.Get("id").Str)
	}
	return ids
}

// checkOpenAIError asserts an OpenAI error body: an "error" object with
// a non-empty string message, a string type, and param and code present.
func checkOpenAIError(t *testing.T, what string, body []byte) gjson.Result {
	t.Helper()
	if !gjson.ValidBytes(body) {
		t.Fatalf("%s: error body is not JSON: %q", what, body)
	}
	e := gjson.GetBytes(body, "error")
	if !e.IsObject() {
		t.Fatalf("%s: no error object: %s", what, body)
	}
	if m := e.Get("message"); m.Type != gjson.String || m.Str == "" {
		t.Errorf("%s: error.message missing or empty: %s", what, body)
	}
	if ty := e.Get("type"); ty.Type != gjson.String || ty.Str == "" {
		t.Errorf("%s: error.type missing: %s", what, body)
	}
	for _, k := range []string{"param", "code"} {
		if !e.Get(k).Exists() {
			t.Errorf("%s: error.%s missing: %s", what, k, body)
		}
	}
	return e
}

// waitFor polls cond until it holds or pollTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", pollTimeout, what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// The real llama.cpp server the integration tests run MegaContext in front
// of: ../shared/bin/llama-server (llama.cpp's own OpenAI-compatible server, a
// static AVX2 build of the llama.cpp that node-llama-cpp@3.22.1 bundles, tag
// v0.5.0, commit de3ff81) serving ../shared/models/stories260K.gguf. `make
// llama-server` builds the same binary for users.
//
// Use it as:
//
//	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1})
//	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
//
// The test is skipped, with the reason printed, when ../shared, the binary or
// the model is absent or when the CPU lacks AVX2 (the build needs it).
// The server listens on 127.0.0.1 only, on a free port; startLlamaServer
// returns once GET /health answers 200 (it answers 503 while the model
// loads), polling under a deadline, and the server is stopped at the test's
// cleanup (its log is shown when the test failed). Restart starts it again
// with other options on the same port, as an operator restarting the
// upstream would.

// llamaServerOptions configure one llama-server process.
type llamaServerOptions struct {
	// NCtx is -c, the context size of the KV pool; 0 means 512. llama.cpp
	// caps it at the model's training context (2048 for stories260K).
	NCtx int
	// Parallel is --parallel, the number of slots; 0 leaves the server's
	// default (4 slots sharing one KV pool of NCtx tokens, while /props
	// reports the full NCtx for each slot).
	Parallel int
	// Embeddings adds --embeddings --pooling mean: the server then answers
	// /v1/embeddings (and no longer chat completions).
	Embeddings bool
	// Alias is --alias, the model name the server reports; empty leaves
	// llama.cpp's default, the model's file path.
	Alias string
	// Args are extra command-line arguments.
	Args []string
}

// llamaServer is a running llama-server process.
type llamaServer struct {
	t       *testing.T
	bin     string
	model   string
	logPath string

	mu     sync.Mutex // guards the fields below
	opts   llamaServerOptions
	port   int             // the port it listens on, kept across restarts
	cmd    *exec.Cmd       // nil when stopped
	exited <-chan struct{} // closed when cmd has exited
	logf   *os.File        // the log of the current process
}

// llamaServerReady bounds how long the server may take to answer /health.
const llamaServerReady = 60 * time.Second

// llamaServerPaths returns the binary and the model, or skips the test
// with the reason when either is absent or the CPU cannot run the binary.
func llamaServerPaths(t *testing.T) (bin, model string) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("skipping: ../shared/bin/llama-server is a linux/amd64 binary (this is %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	if !cpuHasAVX2() {
		t.Skip("skipping: this CPU lacks AVX2, which ../shared/bin/llama-server needs")
	}
	bin = sharedPathOrSkip(t, "bin/llama-server")
	model = sharedPathOrSkip(t, "models/stories260K.gguf")
	return bin, model
}

// sharedPathOrSkip is sharedPath that skips (instead of failing) when the
// file itself is absent.
func sharedPathOrSkip(t *testing.T, rel string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(root), "shared", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: %s is absent (%v)", p, err)
	}
	return p
}

// cpuHasAVX2 reports whether /proc/cpuinfo lists the avx2 flag.
func cpuHasAVX2() bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "flags") {
			for _, f := range strings.Fields(line) {
				if f == "avx2" {
					return true
				}
			}
			return false
		}
	}
	return false
}

// startLlamaServer starts llama-server with opts on a free loopback port
// and waits until it is ready. See the comment at the top of this file.
func startLlamaServer(t *testing.T, opts llamaServerOptions) *llamaServer {
	t.Helper()
	bin, model := llamaServerPaths(t)
	s := &llamaServer{t: t, bin: bin, model: model, logPath: filepath.Join(t.TempDir(), "llama-server.log")}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("llama-server log (tail):\n%s", b)
		}
	})
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		if lastErr = s.launch(opts, port); lastErr == nil {
			return s
		}
		t.Logf("llama-server start attempt %d: %v", attempt+1, lastErr)
	}
	t.Fatalf("llama-server did not start: %v", lastErr)
	return nil
}

// launch starts the process on port and waits for /health.
func (s *llamaServer) launch(opts llamaServerOptions, port int) error {
	if opts.NCtx <= 0 {
		opts.NCtx = 512
	}
	// Eight HTTP threads: concurrent requests must reach the slots.
	args := []string{"-m", s.model, "-c", strconv.Itoa(opts.NCtx), "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--threads", "1", "--threads-http", "8", "--no-webui"}
	if opts.Parallel > 0 {
		args = append(args, "--parallel", strconv.Itoa(opts.Parallel))
	}
	if opts.Embeddings {
		args = append(args, "--embeddings", "--pooling", "mean")
	}
	if opts.Alias != "" {
		args = append(args, "--alias", opts.Alias)
	}
	args = append(args, opts.Args...)
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start: %s %s\n", s.bin, strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = filepath.Dir(s.logPath)
	cmd.Env = llamaServerEnv()
	exited, err := startProcess(cmd, logf)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.opts, s.port, s.cmd, s.exited, s.logf = opts, port, cmd, exited, logf
	s.mu.Unlock()
	// llama-server answers /health with 503 while it loads the model.
	if err := waitHealthy(fmt.Sprintf("http://127.0.0.1:%d/health", port), exited, llamaServerReady); err != nil {
		s.Stop()
		return fmt.Errorf("llama-server: %w (%v)", err, cmd.ProcessState)
	}
	return nil
}

// URL is the server's base URL (no /v1), the proxy's --upstream.
func (s *llamaServer) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("http://127.0.0.1:%d", s.port)
}

// Options returns the options the server runs with (defaults filled in).
func (s *llamaServer) Options() llamaServerOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// ModelPath is the GGUF file the server serves.
func (s *llamaServer) ModelPath() string { return s.model }

// Stop ends the process (SIGTERM, then SIGKILL after 10 s) and waits for
// it; stopping a stopped server does nothing.
func (s *llamaServer) Stop() {
	s.mu.Lock()
	cmd, exited, logf := s.cmd, s.exited, s.logf
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	defer logf.Close()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server and starts it again on the same port with
// opts, as an operator restarting the upstream with another -c would. The
// port is retried for a while in case the old socket lingers.
func (s *llamaServer) Restart(opts llamaServerOptions) {
	s.t.Helper()
	s.Stop()
	port := s.port
	var err error
	deadline := time.Now().Add(llamaServerReady)
	for time.Now().Before(deadline) {
		if err = s.launch(opts, port); err == nil {
			return
		}
		var ln net.Listener
		if ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			continue // the port was free: the failure was not the port's
		}
		time.Sleep(100 * time.Millisecond) // the old socket is still closing
	}
	s.t.Fatalf("llama-server did not restart on port %d: %v", port, err)
}

// post sends a JSON body straight to the server (not through the proxy)
// and returns the status and whole body.
func (s *llamaServer) post(path string, body []byte) (int, []byte, error) {
	resp, err := httpClient.Post(s.URL()+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get fetches a path straight from the server.
func (s *llamaServer) get(path string) (int, []byte, error) {
	resp, err := httpClient.Get(s.URL() + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// tokenize counts the tokens of text with the server's own tokenizer
// (no special tokens), failing the test on an error.
func (s *llamaServer) tokenize(t *testing.T, text string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"content": text, "add_special": false})
	st, b, err := s.post("/tokenize", body)
	if err != nil || st != http.StatusOK {
		t.Fatalf("llama-server /tokenize: %d %v %s", st, err, b)
	}
	return int(gjson.GetBytes(b, "tokens.#").Int())
}

// promptTokens is the number of tokens the server's chat template makes of
// msgs, generation prompt and BOS included: what a chat request's
// usage.prompt_tokens reports for them.
func (s *llamaServer) promptTokens(t *testing.T, msgs []msg) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"messages": msgs})
	st, b, err := s.post("/v1/chat/completions/input_tokens", body)
	if err != nil || st != http.StatusOK {
		t.Fatalf("llama-server input_tokens: %d %v %s", st, err, b)
	}
	n := gjson.GetBytes(b, "input_tokens")
	if !n.Exists() {
		t.Fatalf("llama-server input_tokens: no count in %s", b)
	}
	return int(n.Int())
}

// llamaServerEnv is the environment without LLAMA_ARG_* variables, which
// llama-server reads as defaults for its flags.
func llamaServerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LLAMA_ARG_") {
			env = append(env, kv)
		}
	}
	return env
}

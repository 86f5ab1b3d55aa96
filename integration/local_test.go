package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/native"
)

// storyPrompt is the greedy-generation probe of the native tests; the
// pinned llama.cpp build continues it with " named Lily." on stories260K.
const storyPrompt = "Once upon a time there was a little girl"

// sharedPath returns a file under ../shared beside the repository, or
// skips the test when ../shared is absent; it fails when ../shared exists
// without the file.
func sharedPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("skipping: %s (test models and vocabularies) is absent", dir)
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return p
}

// nativeLibDir returns the absolute folder of the llama.cpp libraries
// ($MEGACONTEXT_NATIVE_DIR, else the repository's .native). When they are
// missing the test fails under CI=true (CI runs `make native` first) and
// is skipped otherwise.
func nativeLibDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(native.EnvDir)
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, native.DefaultDir)
	}
	d, err := native.FindDir(dir)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("native libraries unavailable (run `make native`): %v", err)
		}
		t.Skipf("skipping: native libraries unavailable (run `make native`): %v", err)
	}
	return d
}

// nativeConfig points the proxy at the libraries explicitly: the process
// runs in a scratch folder, where ./.native does not exist.
func nativeConfig(dir string) string {
	return fmt.Sprintf("native:\n  dir: %q\n  threads: 1\n", dir)
}

// promptTokens returns usage.prompt_tokens of a chat or completion answer,
// whole or streamed (the usage chunk); -1 when there is none.
func promptTokens(r *response) int {
	if !bytes.HasPrefix(bytes.TrimSpace(r.Body), []byte("data:")) {
		if u := gjson.GetBytes(r.Body, "usage.prompt_tokens"); u.Exists() {
			return int(u.Int())
		}
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := -1
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		if u := gjson.Get(strings.TrimSpace(data), "usage.prompt_tokens"); u.Exists() {
			n = int(u.Int())
		}
	}
	return n
}

func headerInt(t *testing.T, h http.Header, name string) int {
	t.Helper()
	n, err := strconv.Atoi(h.Get(name))
	if err != nil {
		t.Fatalf("%s = %q: %v", name, h.Get(name), err)
	}
	return n
}

// TestLocalModel serves stories260K in-process (--upstream local --model)
// with a 512-token context: completions pass through and are greedy
// deterministic as llama.cpp is, chats (plain and streamed) work for many
// turns with the history far beyond the context, memory is stored, and the
// window the proxy reports is an exact upper bound of the prompt the model
// evaluated.
func TestLocalModel(t *testing.T) {
	model := sharedPath(t, "models/stories260K.gguf")
	libs := nativeLibDir(t)
	const (
		nCtx         = 512
		safetyMargin = 32 // memory.safety_margin default
		// templateSlack allows for the template cost per message being
		// measured once and for token merges across block boundaries.
		templateSlack = 16
		maxTokens     = 24
	)
	p := startProxy(t, proxyOptions{Upstream: "local", Config: nativeConfig(libs), Args: []string{"--model", model, "--n-ctx", strconv.Itoa(nCtx)}})
	if b, _ := os.ReadFile(p.logPath); !strings.Contains(string(b), "local upstream serving") {
		t.Errorf("log does not say the local upstream serves:\n%s", b)
	}

	t.Run("completions passthrough", func(t *testing.T) {
		body := []byte(`{"prompt": "` + storyPrompt + `", "max_tokens": 12, "temperature": 0}`)
		var texts []string
		for i := 0; i < 2; i++ {
			r := p.mustDo(t, "POST", "/v1/completions", body, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("completion: %d %s", r.Status, r.Body)
			}
			texts = append(texts, gjson.GetBytes(r.Body, "choices.0.text").Str)
			if u := gjson.GetBytes(r.Body, "usage.completion_tokens").Int(); u != 12 {
				t.Errorf("completion_tokens %d, want 12: %s", u, r.Body)
			}
		}
		if !strings.HasPrefix(texts[0], " named Lily.") {
			t.Errorf("greedy continuation %q, want llama.cpp's \" named Lily.\"", texts[0])
		}
		if texts[0] != texts[1] {
			t.Errorf("greedy completions differ: %q vs %q", texts[0], texts[1])
		}
	})

	t.Run("greedy chat is deterministic", func(t *testing.T) {
		msgs := []msg{{"user", storyPrompt}}
		var got []string
		for i, stream := range []bool{false, false, true} {
			body := chatBody(t, msgs, map[string]any{"temperature": 0, "max_tokens": maxTokens, "stream": stream})
			res := p.mustChat(t, body, map[string]string{"X-MegaContext-Id": "greedy-" + strconv.Itoa(i)})
			checkWindowHeaders(t, "greedy chat", res.Header, "greedy-"+strconv.Itoa(i), nCtx)
			if strings.TrimSpace(res.Content) == "" {
				t.Fatalf("empty greedy reply: %s", res.Body)
			}
			got = append(got, res.Content)
		}
		// Fresh contexts, same messages: the same window, the same greedy text,
		// whole or streamed.
		if got[0] != got[1] || got[0] != got[2] {
			t.Errorf("greedy chat replies differ: %q", got)
		}
	})

	t.Run("many turns, exact budgets", func(t *testing.T) {
		const (
			id    = "story"
			turns = 12
		)
		k := newTalker(5)
		history := []msg{{"system", "You tell short stories for children."}}
		maxWindow, maxHistory, usedMemory := 0, 0, false
		for turn := 1; turn <= turns; turn++ {
			history = append(history, msg{"user", k.message()})
			stream := turn%2 == 0
			extra := map[string]any{"temperature": 0, "max_tokens": maxTokens, "stream": stream}
			if stream {
				extra["stream_options"] = map[string]any{"include_usage": true}
			}
			res, err := p.chat(chatBody(t, history, extra), map[string]string{"X-MegaContext-Id": id})
			if err != nil {
				t.Fatalf("turn %d: %v", turn, err)
			}
			if res.Status != http.StatusOK {
				t.Fatalf("turn %d: status %d: %s", turn, res.Status, res.Body)
			}
			checkWindowHeaders(t, "turn "+strconv.Itoa(turn), res.Header, id, nCtx)
			window := headerInt(t, res.Header, "X-MegaContext-Window-Tokens")
			budget := headerInt(t, res.Header, "X-MegaContext-Budget-Tokens")
			hist := headerInt(t, res.Header, "X-MegaContext-History-Tokens")
			if headerInt(t, res.Header, "X-MegaContext-Memory-Tokens") > 0 {
				usedMemory = true
			}
			pt := promptTokens(&res.response)
			if pt <= 0 {
				t.Fatalf("turn %d: no usage.prompt_tokens in the answer: %s", turn, res.Body)
			}
			// The proxy counts with the model's own tokenizer and template:
			// its window is an upper bound of the evaluated prompt, and close.
			if window < pt {
				t.Errorf("turn %d: window %d tokens < the model's prompt_tokens %d: the proxy under-counts", turn, window, pt)
			}
			if window-pt > safetyMargin+templateSlack {
				t.Errorf("turn %d: window %d tokens vs prompt_tokens %d: off by more than the safety margin %d + %d", turn, window, pt, safetyMargin, templateSlack)
			}
			if window > budget || pt+maxTokens > nCtx {
				t.Errorf("turn %d: window %d, budget %d, prompt %d + max_tokens %d vs n_ctx %d", turn, window, budget, pt, maxTokens, nCtx)
			}
			t.Logf("turn %d: window %d, prompt_tokens %d, history %d", turn, window, pt, hist)
			maxWindow, maxHistory = max(maxWindow, window), max(maxHistory, hist)
			history = append(history, msg{"assistant", res.Content})
		}
		if maxHistory <= 2*nCtx || !usedMemory {
			t.Errorf("history reached %d tokens (memory used: %v); the test wants it well beyond n_ctx %d", maxHistory, usedMemory, nCtx)
		}
		t.Logf("%d turns: history %d tokens, largest window %d of n_ctx %d", turns, maxHistory, maxWindow, nCtx)
		st, found := p.stats(t, id)
		if !found || st.Messages < turns+1 || st.Blocks <= 0 || st.Tokens < maxHistory/2 {
			t.Errorf("stats %+v (found %v) after %d turns", st, found, turns)
		}
	})
}

// tokenCount counts text with `megacontext tokenize --vocab`.
func tokenCount(t *testing.T, libs, vocab, text string) int {
	t.Helper()
	cmd := exec.Command(binPath, "tokenize", "--vocab", vocab, "--native-dir", libs)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tokenize: %v", err)
	}
	return len(strings.Fields(string(out)))
}

// TestVocabCounter: --vocab counts tokens with a GGUF vocabulary in front
// of any upstream, and says so at start; the history the proxy reports is
// the vocabulary's exact count.
func TestVocabCounter(t *testing.T) {
	vocab := sharedPath(t, "vocab/ggml-vocab-gpt-2.gguf")
	libs := nativeLibDir(t)
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: nativeConfig(libs), Args: []string{"--vocab", vocab}})
	b, _ := os.ReadFile(p.logPath)
	if !strings.Contains(string(b), "exact token counts from native vocabulary") {
		t.Errorf("log does not report the native vocabulary:\n%s", b)
	}
	if w := nativeWarnings(string(b)); len(w) != 0 {
		t.Errorf("log warns about the native layer:\n%s", strings.Join(w, "\n"))
	}
	const text = "Counting tokens exactly: GPT-2's byte-level BPE splits unusual words like floccinaucinihilipilification."
	res := p.mustChat(t, chatBody(t, []msg{{"user", text}}, nil), map[string]string{"X-MegaContext-Id": "vocab"})
	want := tokenCount(t, libs, vocab, text)
	if got := headerInt(t, res.Header, "X-MegaContext-History-Tokens"); got != want {
		t.Errorf("X-MegaContext-History-Tokens %d, want the vocabulary's count %d", got, want)
	}
	if fakellama.CountTokens(text) == want {
		t.Logf("note: the fake's tokenizer gives the same count (%d)", want)
	}
}

// nativeWarnings returns the log's WARN lines that mention the native layer.
func nativeWarnings(log string) []string {
	var out []string
	re := regexp.MustCompile(`(?i)native`)
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") && re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// TestNativeFallback: missing or broken llama.cpp libraries never crash
// the proxy. With --vocab and MEGACONTEXT_NATIVE_DIR pointing at an empty
// folder (or native.dir at a folder of broken libraries) it starts, logs
// one warning about the native libraries and serves on the upstream's
// tokenizer; --upstream local without libraries exits with a clear error.
func TestNativeFallback(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	vocab := filepath.Join(t.TempDir(), "no-such-vocab.gguf")
	if root, err := repoRoot(); err == nil {
		if p := filepath.Join(filepath.Dir(root), "shared", "vocab", "ggml-vocab-gpt-2.gguf"); fileExists(p) {
			vocab = p
		}
	}
	empty := t.TempDir()
	broken := t.TempDir()
	for _, name := range []string{"libggml-base.so", "libggml.so", "libllama.so"} {
		if err := os.WriteFile(filepath.Join(broken, name), []byte("\x7fELF this is not a shared library"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		config string
		env    []string
	}{
		{"env empty dir", "", []string{native.EnvDir + "=" + empty}},
		{"config broken libs", fmt.Sprintf("native:\n  dir: %q\n", broken), nil},
		{"config missing dir", fmt.Sprintf("native:\n  dir: %q\n", filepath.Join(empty, "nope")), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: c.config, Env: c.env, Args: []string{"--vocab", vocab}})
			res := p.mustChat(t, chatBody(t, []msg{{"user", "Does the proxy still count tokens without native libraries?"}}, nil), map[string]string{"X-MegaContext-Id": "fallback"})
			checkWindowHeaders(t, c.name, res.Header, "fallback", 4096)
			b, _ := os.ReadFile(p.logPath)
			log := string(b)
			if w := nativeWarnings(log); len(w) != 1 || !strings.Contains(w[0], "native libraries unavailable") {
				t.Errorf("want exactly one warning about the native libraries, got %d:\n%s", len(w), strings.Join(w, "\n"))
			}
			if strings.Contains(log, "panic") || strings.Contains(log, "SIGSEGV") {
				t.Errorf("log shows a crash:\n%s", log)
			}
			// The fallback counts with the upstream's tokenizer: exact for the fake.
			if !strings.Contains(log, "tokens=upstream") {
				t.Errorf("log does not show the upstream counter in use:\n%s", log)
			}
		})
	}

	t.Run("upstream local without libraries", func(t *testing.T) {
		code, out := rawRun(t, []string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--upstream", "local",
			"--model", filepath.Join(empty, "model.gguf"), "--data", filepath.Join(t.TempDir(), "data")},
			[]string{native.EnvDir + "=" + empty}, startTimeout)
		if code == 0 || !strings.Contains(out, "make native") || strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Errorf("exit status %d, output:\n%s\nwant a non-zero status and a hint to run `make native`", code, out)
		}
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// TestSecondInstanceOnOneFolderRefused: a second megacontext process on a
// data folder that a running one holds exits non-zero, naming the folder
// and the holder's pid, and leaves the first one serving; once the first
// is killed with SIGKILL (no cleanup), the folder is free again and what
// the first stored is all there.
func TestSecondInstanceOnOneFolderRefused(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	data := filepath.Join(t.TempDir(), "data")
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: data})
	hdr := map[string]string{"X-MegaContext-Id": "locked"}
	p.mustChat(t, chatBody(t, []msg{{"user", "The tide clock reads 7-West."}}, nil), hdr)

	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	port := strconv.Itoa(freePort(t))
	code, out := rawRun(t, []string{"serve", "--listen", "127.0.0.1:" + port, "--upstream", fake.URL(), "--data", data}, nil, startTimeout)
	if code == 0 {
		t.Fatalf("second instance on %s: exit status 0, want non-zero; output:\n%s", data, out)
	}
	abs, _ := filepath.Abs(data)
	if !strings.Contains(out, abs) || !strings.Contains(out, "pid "+strconv.Itoa(pid)) {
		t.Fatalf("second instance's message names neither the folder %s nor the holder's pid %d:\n%s", abs, pid, out)
	}
	// The first is unharmed and still serving.
	p.mustChat(t, chatBody(t, []msg{{"user", "The tide clock reads 7-West."}, {"assistant", "Noted."}, {"user", "And the harbor gate?"}}, nil), hdr)
	before, _ := p.stats(t, "locked")

	p.restartHard() // SIGKILL, then a new process on the same folder
	after, found := p.stats(t, "locked")
	if !found || after.Messages != before.Messages {
		t.Fatalf("after kill -9 and restart: %+v (found %v), want %d messages", after, found, before.Messages)
	}
}

// TestCacheBytesBoundsLoadedContexts: the real binary with memory.cache_bytes
// of 1 MiB, fed twelve MegaContexts of about 280 KB each, keeps what the
// loaded ones are charged within the bound (as /metrics reports), holds
// three, and still answers from every one (an evicted context reads back
// from the store whole).
func TestCacheBytesBoundsLoadedContexts(t *testing.T) {
	const budget = 1 << 20
	fake := newFake(t, fakellama.Options{NCtx: 8192})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: fmt.Sprintf("memory:\n  cache_bytes: %d\n", budget)})
	r := rand.New(rand.NewPCG(4, 4))
	k := newTalker(4)
	want := map[string]int{}
	for c := 0; c < 12; c++ {
		id := fmt.Sprintf("ctx-%02d", c)
		var msgs []msg
		for i := 0; i < 30; i++ {
			msgs = append(msgs, msg{"user", k.message()}, msg{"assistant", k.message() + " " + k.message()})
		}
		msgs = append(msgs, msg{"user", fmt.Sprintf("What is code %d?", r.IntN(1000))})
		p.mustChat(t, chatBody(t, msgs, nil), map[string]string{"X-MegaContext-Id": id})
		want[id] = len(msgs) + 1 // and the reply
		charged, loaded := cacheGauges(t, p)
		if charged > budget {
			t.Fatalf("after %d contexts: %.0f bytes charged, memory.cache_bytes %d", c+1, charged, budget)
		}
		t.Logf("after %d contexts: %.0f bytes charged, %v loaded", c+1, charged, loaded)
		if c == 11 && (loaded < 2 || loaded > 4) {
			t.Fatalf("%v contexts loaded of 12 (%.0f bytes charged)", loaded, charged)
		}
	}
	for id, n := range want {
		p.waitMessages(t, id, n)
	}
}

// cacheGauges scrapes megacontext_cache_bytes and megacontext_cache_contexts.
func cacheGauges(t *testing.T, p *proxy) (charged, loaded float64) {
	t.Helper()
	r := p.mustDo(t, "GET", "/metrics", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.Status)
	}
	get := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(r.Body))
		if m == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("/metrics: %s = %q", name, m[1])
		}
		return v
	}
	return get("megacontext_cache_bytes"), get("megacontext_cache_contexts")
}

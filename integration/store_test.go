package integration

import (
	"path/filepath"
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

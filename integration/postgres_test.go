package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
)

// TestMigrateCommand: `megacontext migrate` creates the schema of an empty
// database, a second run applies nothing, and --status reports the
// version; --status on an empty database fails and says what to run.
func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.NewDB(t)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binPath, append([]string{"migrate", "--dsn", dsn}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := run("--status")
	if err == nil || !strings.Contains(out, "megacontext migrate") {
		t.Fatalf("status of an empty database: %v\n%s", err, out)
	}
	out, err = run()
	if err != nil || !strings.Contains(out, "applied 0001") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err = run()
	if err != nil || strings.Contains(out, "applied") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	out, err = run("--status")
	if err != nil || !strings.Contains(out, "applied 0001") || !strings.Contains(out, "as this binary needs") {
		t.Fatalf("status: %v\n%s", err, out)
	}
}

// TestDeployConfigServes: the configuration deploy/compose.yaml gives its
// replicas serves chat through PostgreSQL with its example key (and
// refuses a request without one).
func TestDeployConfigServes(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fake := newFake(t, fakellama.Options{})
	dsn := pgtest.NewDB(t)
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Args: []string{"--config", filepath.Join(root, "deploy", "megacontext.yaml")},
		Env: []string{"MEGACONTEXT_STORE_DSN=" + dsn}})
	body := chatBody(t, []msg{{"user", "hello from the deploy config"}}, nil)
	if r := p.mustDo(t, "POST", "/v1/chat/completions", body, nil); r.Status != 401 {
		t.Fatalf("without a key: %d %s", r.Status, r.Body)
	}
	p.mustChat(t, body, map[string]string{"Authorization": "Bearer sk-change-me"})
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts", nil, map[string]string{"Authorization": "Bearer sk-change-me-admin"})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"messages":2`) {
		t.Fatalf("the turn is not in the database: %d %s", r.Status, r.Body)
	}
}

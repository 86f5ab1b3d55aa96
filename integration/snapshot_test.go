package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// teamHistory gives a proxy a few turns of a team's knowledge under id.
func teamHistory(t *testing.T, p *proxy, id string) {
	t.Helper()
	hdr := map[string]string{"X-MegaContext-Id": id}
	conv := []msg{{"system", "You are the team's assistant."}}
	for i, fact := range []string{
		"The staging database password rotates every Monday at 06:00 UTC.",
		"Our on-call pager code is PGR-4471-QK.",
		"Deploys freeze from December 20 to January 3.",
		fmt.Sprintf("The ferry to the offsite leaves from pier %d.", 9),
	} {
		conv = append(conv, msg{"user", fact})
		res := p.mustChat(t, chatBody(t, conv, nil), hdr)
		conv = append(conv, msg{"assistant", res.Content})
		p.waitMessages(t, id, len(conv))
		_ = i
	}
}

// TestSnapshotExportImportThroughBinary moves a memory between two real
// proxies and through the CLI: HTTP export with a signed root, verify,
// tampered and truncated bundles refused with nothing stored, HTTP and CLI
// imports that keep the root, and a window on the copy that recalls the
// original's facts.
func TestSnapshotExportImportThroughBinary(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "signing.pem")
	if code, out := rawRun(t, []string{"keygen", "-o", keyPath}, nil, startTimeout); code != 0 {
		t.Fatalf("keygen: %d\n%s", code, out)
	}
	cfg := fmt.Sprintf("provenance:\n  signing_key: %q\n", keyPath)
	dataA := filepath.Join(dir, "a")
	a := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: dataA, Config: cfg})
	teamHistory(t, a, "team-handbook")

	r := a.mustDo(t, "GET", "/megacontext/v1/contexts/team-handbook/export", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("export: %d %s", r.Status, r.Body)
	}
	root, signer := r.Header.Get("X-MegaContext-Root"), r.Header.Get("X-MegaContext-Signed-By")
	if len(root) != 64 || signer == "" || r.Header.Get("Content-Type") != "application/x-megacontext-snapshot" {
		t.Fatalf("export headers: %v", r.Header)
	}
	bundlePath := filepath.Join(dir, "team.mcx")
	if err := os.WriteFile(bundlePath, r.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := a.mustDo(t, "GET", "/megacontext/v1/contexts/nobody/export", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("export of a missing context: %d", r.Status)
	}

	// verify: the root, the signature by the key's public half; a changed
	// byte is refused.
	code, out := rawRun(t, []string{"verify", bundlePath, "--pub", keyPath + ".pub"}, nil, startTimeout)
	if code != 0 || !strings.Contains(out, "root "+root) || !strings.Contains(out, "signature valid") {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	tampered := bytes.Clone(r.Body)
	i := bytes.Index(tampered, []byte("PGR-4471-QK"))
	tampered[i] = 'X'
	tamperedPath := filepath.Join(dir, "tampered.mcx")
	os.WriteFile(tamperedPath, tampered, 0o644)
	if code, out := rawRun(t, []string{"verify", tamperedPath}, nil, startTimeout); code == 0 || !strings.Contains(out, "altered or damaged") {
		t.Fatalf("verify of a tampered bundle: %d\n%s", code, out)
	}
	otherKey := filepath.Join(dir, "other.pem")
	rawRun(t, []string{"keygen", "-o", otherKey}, nil, startTimeout)
	if code, out := rawRun(t, []string{"verify", bundlePath, "--pub", otherKey + ".pub"}, nil, startTimeout); code == 0 || !strings.Contains(out, "not a trusted key") {
		t.Fatalf("verify with another key: %d\n%s", code, out)
	}

	// HTTP import into another proxy: tampered and truncated refused,
	// nothing stored; intact kept with its root.
	b := startProxy(t, proxyOptions{Upstream: fake.URL()})
	for name, body := range map[string][]byte{"tampered": tampered, "truncated": r.Body[:len(r.Body)*2/3]} {
		res := b.mustDo(t, "POST", "/megacontext/v1/contexts/copy/import", body, nil)
		e := checkOpenAIError(t, name, res.Body)
		if res.Status != http.StatusBadRequest || e.Get("code").Str != "invalid_snapshot" || !strings.Contains(e.Get("message").Str, "nothing was stored") {
			t.Fatalf("%s import: %d %s", name, res.Status, res.Body)
		}
		if ids := b.listIDs(t); len(ids) != 0 {
			t.Fatalf("%s import left %v", name, ids)
		}
	}
	res := b.mustDo(t, "POST", "/megacontext/v1/contexts/copy/import", r.Body, nil)
	if res.Status != http.StatusCreated || res.Header.Get("X-MegaContext-Root") != root || gjson.GetBytes(res.Body, "signed_by").Str != signer {
		t.Fatalf("import: %d %s", res.Status, res.Body)
	}
	if again := b.mustDo(t, "POST", "/megacontext/v1/contexts/copy/import", r.Body, nil); again.Status != http.StatusConflict {
		t.Fatalf("import over an existing context: %d %s", again.Status, again.Body)
	}
	re := b.mustDo(t, "GET", "/megacontext/v1/contexts/copy/export", nil, nil)
	if re.Header.Get("X-MegaContext-Root") != root {
		t.Fatalf("re-export root %s, original %s", re.Header.Get("X-MegaContext-Root"), root)
	}
	// The copy remembers: a new chat on it carries the pager code upstream.
	n := len(fake.Requests())
	b.mustChat(t, chatBody(t, []msg{{"user", "What is our on-call pager code?"}}, nil), map[string]string{"X-MegaContext-Id": "copy"})
	reqs := fake.Requests()[n:]
	if len(reqs) == 0 || !strings.Contains(string(reqs[len(reqs)-1].Body), "PGR-4471-QK") {
		t.Fatal("the imported memory's fact did not reach the upstream")
	}

	// A reply stored last: its costs are counted with the next turn's (or
	// an export's) batch.
	a.mustChat(t, chatBody(t, []msg{{"user", "Remember: the offsite badge color is teal."}}, nil), map[string]string{"X-MegaContext-Id": "unsettled"})
	a.waitMessages(t, "unsettled", 2)

	// The CLI, offline: export from A's folder gives the same root; import
	// into a new folder keeps it; a truncated bundle is refused.
	a.stop()
	// With the upstream down the process counts with the estimate, but
	// the context recorded the tokenizer its counts were made with: the
	// same root. A context whose last reply is still to be counted is
	// refused, clearly, rather than exported under another root.
	code, out = rawRun(t, []string{"export", "--data", dataA, "--config", writeConfig(t, cfg), "--upstream", closedPortURL(t), "--context", "team-handbook", "-o", filepath.Join(dir, "offline.mcx")}, nil, startTimeout)
	if code != 0 || !strings.Contains(out, "root "+root) {
		t.Fatalf("cli export with the upstream unreachable: %d (want root %s)\n%s", code, root, out)
	}
	code, out = rawRun(t, []string{"export", "--data", dataA, "--upstream", closedPortURL(t), "--context", "unsettled", "-o", filepath.Join(dir, "unsettled.mcx")}, nil, startTimeout)
	if code == 0 || !strings.Contains(out, "tokenizer") || !strings.Contains(out, "upstream reachable") {
		t.Fatalf("cli export of an uncounted reply with the upstream unreachable: %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "unsettled.mcx")); !os.IsNotExist(err) {
		t.Fatalf("a refused export left a bundle: %v", err)
	}
	code, out = rawRun(t, []string{"export", "--data", dataA, "--upstream", fake.URL(), "--context", "unsettled", "-o", filepath.Join(dir, "unsettled.mcx")}, nil, startTimeout)
	if code != 0 || !strings.Contains(out, "root ") {
		t.Fatalf("cli export of an uncounted reply with the upstream: %d\n%s", code, out)
	}
	cliPath := filepath.Join(dir, "cli.mcx")
	code, out = rawRun(t, []string{"export", "--data", dataA, "--config", writeConfig(t, cfg), "--upstream", fake.URL(), "--context", "team-handbook", "-o", cliPath}, nil, startTimeout)
	if code != 0 || !strings.Contains(out, "root "+root) {
		t.Fatalf("cli export: %d\n%s", code, out)
	}
	dataC := filepath.Join(dir, "c")
	code, out = rawRun(t, []string{"import", "--data", dataC, "--context", "handbook", "-i", filepath.Join(dir, "truncated.mcx")}, nil, startTimeout)
	if code == 0 {
		t.Fatalf("cli import of a missing file: %d\n%s", code, out)
	}
	os.WriteFile(filepath.Join(dir, "truncated.mcx"), r.Body[:len(r.Body)-10], 0o644)
	code, out = rawRun(t, []string{"import", "--data", dataC, "--context", "handbook", "-i", filepath.Join(dir, "truncated.mcx")}, nil, startTimeout)
	if code == 0 || !strings.Contains(out, "truncated") {
		t.Fatalf("cli import of a truncated bundle: %d\n%s", code, out)
	}
	// With the upstream down, the import is refused rather than rebuilt
	// for good with the estimate the process falls back to; nothing is
	// stored (the import below, under the same id, would be refused).
	code, out = rawRun(t, []string{"import", "--data", dataC, "--upstream", closedPortURL(t), "--context", "handbook", "-i", cliPath}, nil, startTimeout)
	if code == 0 || !strings.Contains(out, "cannot reach its own tokenizer") || !strings.Contains(out, "nothing was stored") {
		t.Fatalf("cli import with the upstream unreachable: %d\n%s", code, out)
	}
	code, out = rawRun(t, []string{"import", "--data", dataC, "--upstream", fake.URL(), "--context", "handbook", "--pub", keyPath + ".pub", "-i", cliPath}, nil, startTimeout)
	if code != 0 || !strings.Contains(out, "root "+root) {
		t.Fatalf("cli import: %d\n%s", code, out)
	}
	c := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: dataC})
	if ids := c.listIDs(t); len(ids) != 1 || ids[0] != "handbook" {
		t.Fatalf("contexts after the CLI imports: %v", ids)
	}
}

// writeConfig writes a YAML config for a CLI run and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "megacontext.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestForkDiffMergeThroughBinary branches a memory through the admin API,
// lets both sides grow, compares them and merges one into the other.
func TestForkDiffMergeThroughBinary(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	teamHistory(t, p, "main")
	st, _ := p.stats(t, "main")

	fork := func(body string) *response {
		return p.mustDo(t, "POST", "/megacontext/v1/contexts/main/fork", []byte(body), nil)
	}
	if r := fork(`{"to":"branch","at":4}`); r.Status != http.StatusCreated || gjson.GetBytes(r.Body, "messages").Int() != 5 {
		t.Fatalf("fork: %d %s", r.Status, r.Body)
	}
	for body, want := range map[string]int{`{"to":"branch"}`: 409, `{"at":2}`: 400, `{"to":"x","at":99999}`: 404, `{"to":"y","at":-3}`: 400} {
		if r := fork(body); r.Status != want {
			t.Fatalf("fork %s: %d, want %d: %s", body, r.Status, want, r.Body)
		}
	}
	// Each side goes on its own way.
	p.mustChat(t, chatBody(t, []msg{{"user", "Main only: the release train leaves on Thursdays."}}, nil), map[string]string{"X-MegaContext-Id": "main"})
	p.mustChat(t, chatBody(t, []msg{{"user", "Branch only: the demo server is demo-7.internal."}}, nil), map[string]string{"X-MegaContext-Id": "branch"})
	p.waitMessages(t, "branch", 7)

	d := p.mustDo(t, "GET", "/megacontext/v1/contexts/main/diff?with=branch", nil, nil)
	if d.Status != http.StatusOK || gjson.GetBytes(d.Body, "ancestor.messages").Int() != 5 ||
		gjson.GetBytes(d.Body, "b.count").Int() != 2 || gjson.GetBytes(d.Body, "a.count").Int() != int64(st.Messages-5+2) ||
		!strings.Contains(gjson.GetBytes(d.Body, "b.messages.0.text").Str, "demo-7.internal") {
		t.Fatalf("diff: %d %s", d.Status, d.Body)
	}
	if r := p.mustDo(t, "GET", "/megacontext/v1/contexts/main/diff", nil, nil); r.Status != 400 {
		t.Fatalf("diff without with: %d", r.Status)
	}
	m := p.mustDo(t, "POST", "/megacontext/v1/contexts/main/merge", []byte(`{"from":"branch"}`), nil)
	if m.Status != http.StatusOK || len(gjson.GetBytes(m.Body, "messages").Array()) != 2 {
		t.Fatalf("merge: %d %s", m.Status, m.Body)
	}
	d = p.mustDo(t, "GET", "/megacontext/v1/contexts/main/diff?with=branch", nil, nil)
	if gjson.GetBytes(d.Body, "b.count").Int() != 0 {
		t.Fatalf("diff after the merge: %s", d.Body)
	}
	// The merged messages name their origin, and a question finds them.
	seq := gjson.GetBytes(m.Body, "messages.0").Int()
	msgs := p.mustDo(t, "GET", fmt.Sprintf("/megacontext/v1/contexts/main/messages?from=%d&limit=1", seq), nil, nil)
	if gjson.GetBytes(msgs.Body, "data.0.origin.context").Str != "branch" {
		t.Fatalf("merged message: %s", msgs.Body)
	}
	w := p.mustDo(t, "POST", "/megacontext/v1/contexts/main/window", []byte(`{"query":"Which demo server do we use?","budget":1500}`), nil)
	if !strings.Contains(gjson.GetBytes(w.Body, "memory").Str, "demo-7.internal") {
		t.Fatalf("the merged fact is not in the window: %s", w.Body)
	}
	if r := p.mustDo(t, "POST", "/megacontext/v1/contexts/main/merge", []byte(`{"from":"nobody"}`), nil); r.Status != 404 {
		t.Fatalf("merge from a missing context: %d", r.Status)
	}
	// The merged span traces back to the branch.
	block := gjson.GetBytes(m.Body, "first_block").Int()
	pr := p.mustDo(t, "GET", fmt.Sprintf("/megacontext/v1/contexts/main/provenance?block=%d", block), nil, nil)
	if pr.Status != http.StatusOK || gjson.GetBytes(pr.Body, "origin.kind").Str != "merged" || gjson.GetBytes(pr.Body, "origin.from").Str != "branch" ||
		gjson.GetBytes(pr.Body, "records.0.kind").Str != "merge" || !gjson.GetBytes(pr.Body, "path").IsArray() {
		t.Fatalf("provenance: %d %s", pr.Status, pr.Body)
	}
	for q, want := range map[string]int{"": 400, "?block=x": 400, "?block=99999": 404} {
		if r := p.mustDo(t, "GET", "/megacontext/v1/contexts/main/provenance"+q, nil, nil); r.Status != want {
			t.Fatalf("provenance%s: %d, want %d", q, r.Status, want)
		}
	}
}

// dirHolds counts the occurrences of text in the files under dir.
func dirHolds(t *testing.T, dir, text string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		n += bytes.Count(b, []byte(text))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestForgetThroughBinary erases a secret from a running proxy: the data
// folder no longer holds it, no later window carries it upstream, and a
// restart does not bring it back.
func TestForgetThroughBinary(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	data := filepath.Join(t.TempDir(), "data")
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: data})
	const secret = "QK-7731-LOCKER"
	hdr := map[string]string{"X-MegaContext-Id": "alice"}
	conv := []msg{{"user", "My locker code is " + secret + "."}}
	res := p.mustChat(t, chatBody(t, conv, nil), hdr)
	conv = append(conv, msg{"assistant", res.Content}, msg{"user", "Repeat it back: " + secret})
	p.mustChat(t, chatBody(t, conv, nil), hdr)
	p.waitMessages(t, "alice", 4)
	if dirHolds(t, data, secret) == 0 {
		t.Fatal("setup: the secret is not in the data folder")
	}
	for body, want := range map[string]int{`{}`: 400, `{"match":"erase"}`: 400, `{"messages":[99]}`: 404} {
		if r := p.mustDo(t, "POST", "/megacontext/v1/contexts/alice/forget", []byte(body), nil); r.Status != want {
			t.Fatalf("forget %s: %d, want %d: %s", body, r.Status, want, r.Body)
		}
	}
	r := p.mustDo(t, "POST", "/megacontext/v1/contexts/alice/forget", []byte(`{"match":"`+secret+`","reason":"user request"}`), nil)
	if r.Status != http.StatusOK || gjson.GetBytes(r.Body, "occurrences").Int() < 2 {
		t.Fatalf("forget: %d %s", r.Status, r.Body)
	}
	if n := dirHolds(t, data, secret); n != 0 {
		t.Fatalf("the data folder holds the secret %d times after forget", n)
	}
	ask := func() {
		t.Helper()
		n := len(fake.Requests())
		p.mustChat(t, chatBody(t, []msg{{"user", "What is my locker code?"}}, nil), hdr)
		for _, req := range fake.Requests()[n:] {
			if bytes.Contains(req.Body, []byte(secret)) {
				t.Fatalf("a window after forget carries the secret upstream")
			}
		}
	}
	ask()
	p.restartHard()
	ask()
	if n := dirHolds(t, data, secret); n != 0 {
		t.Fatalf("the data folder holds the secret %d times after a restart", n)
	}
}

package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// TestMountsThroughBinary: keys of one tenant draw on a team handbook next
// to their own memory, by header or by their key's configured mounts; the
// handbook's spans reach the upstream in a part of the memory that names
// it, filtered by the caller's scopes; a key may not mount what its mounts
// do not list (403); another tenant cannot reach the handbook (404); a
// mounted span traces back to the handbook.
func TestMountsThroughBinary(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	cfg := `auth:
  keys:
    - {key: sk-admin, tenant: acme, scopes: [basic, pii, admin]}
    - {key: sk-alice, tenant: acme, scopes: [basic]}
    - {key: sk-bob, tenant: acme, scopes: [basic], mounts: [team-handbook]}
    - {key: sk-eve, tenant: globex, scopes: [basic, admin]}
policy:
  rules:
    - {name: emails, detector: email, action: redact, allow_scopes: [pii]}
`
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: cfg})
	// The handbook, written by the admin.
	conv := []msg{{"system", "Team knowledge base."}}
	for _, fact := range []string{
		"The VPN gateway for the office is vpn-east-3.corp; use the Tunnelblick client.",
		"Expense reports go to finance-desk@example.com before the 5th of each month.",
		"The fire assembly point is the north car park.",
	} {
		conv = append(conv, msg{"user", fact})
		res := p.mustChat(t, chatBody(t, conv, nil), as("sk-admin", "team-handbook", ""))
		conv = append(conv, msg{"assistant", res.Content})
	}
	// Alice's own memory, and a question the handbook answers.
	p.mustChat(t, chatBody(t, []msg{{"user", "My desk is number 42 on the third floor."}}, nil), as("sk-alice", "alice", ""))
	hdr := as("sk-alice", "alice", "")
	hdr["X-MegaContext-Mount"] = "team-handbook"
	_, up := forwarded(t, p, fake, chatBody(t, []msg{{"user", "Which VPN gateway does the office use?"}}, nil), hdr)
	body := string(up.Body)
	if i := strings.Index(body, `memory from=\"team-handbook\"`); i < 0 || !strings.Contains(body[i:], "vpn-east-3.corp") {
		t.Fatalf("the handbook's span did not reach the upstream in its own part:\n%s", body)
	}
	// Alice has no pii scope: the handbook's e-mail is redacted for her.
	_, up = forwarded(t, p, fake, chatBody(t, []msg{{"user", "Where do expense reports go?"}}, nil), hdr)
	if strings.Contains(string(up.Body), "finance-desk@example.com") || !strings.Contains(string(up.Body), "[redacted:email]") {
		t.Fatalf("a mount's e-mail for a caller without pii:\n%s", up.Body)
	}
	// Bob's key mounts the handbook by configuration, and nothing else.
	_, up = forwarded(t, p, fake, chatBody(t, []msg{{"user", "Where is the fire assembly point?"}}, nil), as("sk-bob", "bob", ""))
	if !strings.Contains(string(up.Body), "north car park") {
		t.Fatalf("bob's configured mount:\n%s", up.Body)
	}
	bobMore := as("sk-bob", "bob", "")
	bobMore["X-MegaContext-Mount"] = "alice"
	r := p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, []msg{{"user", "Hi"}}, nil), bobMore)
	if e := checkOpenAIError(t, "bob mounts alice", r.Body); r.Status != http.StatusForbidden || e.Get("code").Str != "mount_forbidden" {
		t.Fatalf("bob mounting alice: %d %s", r.Status, r.Body)
	}
	// Another tenant cannot reach the handbook, and stores nothing trying.
	eve := as("sk-eve", "eve", "")
	eve["X-MegaContext-Mount"] = "team-handbook"
	r = p.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, []msg{{"user", "Which VPN gateway?"}}, nil), eve)
	if e := checkOpenAIError(t, "eve mounts the handbook", r.Body); r.Status != http.StatusNotFound || e.Get("code").Str != "mount_not_found" {
		t.Fatalf("another tenant mounting the handbook: %d %s", r.Status, r.Body)
	}
	if ids := adminList(t, p, "sk-eve"); len(ids) != 0 {
		t.Fatalf("eve's refused request stored %v", ids)
	}
	// The dry run shows the window with the mount; its entries name the
	// handbook, and a mounted span traces back to it.
	admin := as("sk-admin", "", "")
	admin["X-MegaContext-Mount"] = "team-handbook"
	w := p.mustDo(t, "POST", "/megacontext/v1/contexts/alice/window", []byte(`{"query":"Which VPN gateway does the office use?","budget":1500}`), admin)
	var block int64 = -1
	for _, en := range gjson.GetBytes(w.Body, "entries").Array() {
		if en.Get("memory").Str == "team-handbook" && en.Get("level").Int() == 0 {
			block = en.Get("first_block").Int()
		}
	}
	if w.Status != http.StatusOK || block < 0 {
		t.Fatalf("dry run with a mount: %d %s", w.Status, w.Body)
	}
	pr := p.mustDo(t, "GET", fmt.Sprintf("/megacontext/v1/contexts/alice/provenance?block=%d&mount=team-handbook", block), nil, as("sk-admin", "", ""))
	if pr.Status != http.StatusOK || gjson.GetBytes(pr.Body, "origin.kind").Str != "mounted" || gjson.GetBytes(pr.Body, "origin.from").Str != "team-handbook" {
		t.Fatalf("provenance of a mounted span: %d %s", pr.Status, pr.Body)
	}
}

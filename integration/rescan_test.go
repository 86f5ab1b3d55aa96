package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// TestPolicyChangeReachesStoredMemory: card numbers stored while no policy
// was configured are recalled as they are; after a restart with a card
// rule, a new chat recalls the messages with the cards redacted and the
// upstream never receives them. The stored context is rescanned once: a
// further restart does not rescan it again.
func TestPolicyChangeReachesStoredMemory(t *testing.T) {
	const (
		id    = "alice"
		card  = "4111 1111 1111 1111"
		wide  = "５５５５ ５５５５ ５５５５ ４４４４" // fullwidth digits
		hotel = "Marisol"
	)
	// Whole numbers: the fake upstream's replies echo the start of each
	// message, half a card, which no detector can tell from any number.
	never := []string{card, "4111111111111111", wide, "5555 5555 5555 4444", "5555555555554444"}
	fake := newFake(t, fakellama.Options{NCtx: 4096})
	data := filepath.Join(t.TempDir(), "data")
	ask := func(p *proxy, thread string) fakellama.Request {
		t.Helper()
		body := chatBody(t, []msg{{"user", "Which hotel did I book in Lisbon, and which cards did I give you?"}}, map[string]any{"max_tokens": 64})
		_, req := forwarded(t, p, fake, body, as("", id, thread))
		return req
	}

	// Stored with no policy: recalled as written.
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: data})
	history := []msg{{"user", "Charge my card " + card + " for the Lisbon trip: I booked the Hotel " + hotel + " Grande by the river."}}
	history = append(history, msg{"assistant", p.mustChat(t, chatBody(t, history, map[string]any{"max_tokens": 32}), as("", id, "")).Content})
	history = append(history, msg{"user", "For incidentals use my other card " + wide + ", please."})
	p.mustChat(t, chatBody(t, history, map[string]any{"max_tokens": 32}), as("", id, ""))
	p.waitMessages(t, id, 4)
	if req := ask(p, "before"); !strings.Contains(req.Prompt, card) || !strings.Contains(req.Prompt, wide) {
		t.Fatalf("precondition: with no policy, a new chat does not recall the cards:\n%s", req.Prompt)
	}
	p.stop()

	// Restarted with a card rule: a new chat recalls the messages, redacted.
	config := "policy:\n  rules:\n    - {name: cards, detector: credit_card, action: redact, allow_scopes: [pii]}\n"
	p = startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: data, Config: config})
	req := ask(p, "after")
	if s, ok := containsAny(req.Prompt, never...); ok {
		t.Errorf("after the card rule was added, the upstream received %q from memory:\n%s", s, req.Prompt)
	}
	if !strings.Contains(req.Prompt, hotel) || strings.Count(req.Prompt, "[redacted:credit_card]") < 2 {
		t.Errorf("the stored messages were not recalled with both cards redacted:\n%s", req.Prompt)
	}
	// The admin view agrees.
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages", nil, nil)
	if s, ok := containsAny(string(r.Body), never...); ok || r.Status != 200 {
		t.Errorf("message listing (status %d) holds %q: %s", r.Status, s, r.Body)
	}

	// Once per policy change: another restart does not rescan.
	p.stop()
	p.start()
	if req := ask(p, "again"); strings.Contains(req.Prompt, card) || !strings.Contains(req.Prompt, hotel) {
		t.Errorf("after another restart:\n%s", req.Prompt)
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "rescanned"); n != 1 {
		t.Errorf("the log holds %d rescans over two starts with the rule, want 1", n)
	}
}

package memory

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/policy"
)

func TestPolicyFiltersMemoryByScope(t *testing.T) {
	pol, err := policy.Compile([]policy.Rule{
		{Name: "cards", Detector: "credit_card", Action: "redact", AllowScopes: []string{"pii"}},
		{Name: "emails", Detector: "email", Action: "redact", AllowScopes: []string{"pii"}},
		{Name: "internal", Pattern: `(?i)project\s+nightjar`, Action: "exclude", AllowScopes: []string{"internal"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(Options{Now: fixedClock(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := Key{Tenant: "acme", Context: "alice"}
	secret := "Please charge my card 4111 1111 1111 1111 and mail the receipt to alice@example.com; the hotel is the Grand Budapest."
	conv := conversation(40, 3)
	conv[5] = msg("user", secret)
	conv[9] = msg("user", "Status of project Nightjar: the launch code is OWL-771.")
	for i := 2; i <= len(conv); i += 2 {
		if _, err := e.Prepare(Request{Key: k, Messages: conv[:i], Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
			t.Fatal(err)
		}
	}
	ask := []Message{msg("user", "Which hotel, card, email and launch code did I mention for project Nightjar?")}
	for _, tc := range []struct {
		scopes      []string
		want, never []string
	}{
		{nil, []string{"Grand Budapest", "[redacted:credit_card]", "[redacted:email]"}, []string{"4111 1111", "alice@example.com", "OWL-771"}},
		{[]string{"pii"}, []string{"Grand Budapest", "4111 1111 1111 1111", "alice@example.com"}, []string{"OWL-771"}},
		{[]string{"pii", "internal"}, []string{"alice@example.com", "OWL-771"}, nil},
	} {
		w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: 3000, PerMessage: 4, TailPercent: 30, DryRun: true, Scopes: tc.scopes})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.want {
			if !strings.Contains(w.Memory, s) {
				t.Errorf("scopes %v: %q missing from memory:\n%s", tc.scopes, s, w.Memory)
			}
		}
		for _, s := range tc.never {
			if strings.Contains(w.Memory, s) {
				t.Errorf("scopes %v: %q leaked into memory", tc.scopes, s)
			}
		}
	}
	// Gists never carry a sensitive span, whoever asks.
	c, _ := e.get(k, false)
	for l := 1; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			n := c.tree.Node(l, i)
			for _, s := range []string{"4111", "alice@example.com", "OWL-771"} {
				if strings.Contains(n.Text, s) || strings.Contains(n.Short, s) {
					t.Fatalf("gist %d/%d carries %q: %q / %q", l, i, s, n.Text, n.Short)
				}
			}
		}
	}
}

// TestTenantIsolationProperty stores secrets under random tenants and
// context ids (separators and escapes included) and checks that no other
// tenant can list, read or recall them.
func TestTenantIsolationProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e, err := Open(Options{Now: fixedClock()})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		tenants := []string{"a", "b", "a.b", "a-b", "ab"}
		idGen := rapid.SampledFrom([]string{"x", "x:y", "x%3Ay", "default", "a", ":", "%", "x/y", "x y"})
		type secret struct {
			tenant, ctx, text string
		}
		var secrets []secret
		for i := rapid.IntRange(1, 6).Draw(t, "n"); i > 0; i-- {
			s := secret{tenant: rapid.SampledFrom(tenants).Draw(t, "tenant"), ctx: idGen.Draw(t, "ctx"), text: fmt.Sprintf("SECRET%d-%d", i, rapid.IntRange(0, 1e6).Draw(t, "v"))}
			secrets = append(secrets, s)
			if _, err := e.Prepare(Request{Key: Key{Tenant: s.tenant, Context: s.ctx}, Messages: []Message{msg("user", "remember "+s.text)}, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tn := range tenants {
			list, err := e.List(tn)
			if err != nil {
				t.Fatal(err)
			}
			for _, info := range list {
				if info.Tenant != tn {
					t.Fatalf("tenant %s lists a context of %s", tn, info.Tenant)
				}
			}
			for _, ctxID := range []string{"x", "x:y", "x%3Ay", "default", "a", ":", "%", "x/y", "x y"} {
				w, err := e.Prepare(Request{Key: Key{Tenant: tn, Context: ctxID}, Messages: []Message{msg("user", "what secret SECRET do you remember?")}, Budget: 2000, PerMessage: 4, TailPercent: 40, DryRun: true})
				if err == ErrNotFound {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range secrets {
					if strings.Contains(w.Memory, s.text) && (s.tenant != tn || s.ctx != ctxID) {
						t.Fatalf("tenant %s context %q sees %s's secret from %q", tn, ctxID, s.tenant, s.ctx)
					}
				}
			}
		}
	})
}

func TestManualTagWithholdsWholeMessage(t *testing.T) {
	pol, err := policy.Compile([]policy.Rule{{Name: "internal", Pattern: `(?i)nightjar`, Action: "exclude", AllowScopes: []string{"internal"}}, {Name: "private", Pattern: `\bzzzz\b`, Action: "redact", AllowScopes: []string{"private"}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e, err := Open(Options{Dir: dir, Now: fixedClock(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Tenant: "acme", Context: "bob"}
	conv := conversation(30, 5)
	conv[3] = msg("user", "My therapist appointment is on Thursday at the Elm Street clinic.")
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4000, PerMessage: 4, TailPercent: 20}); err != nil {
		t.Fatal(err)
	}
	ask := []Message{msg("user", "When is my therapist appointment at the clinic?")}
	window := func(e *Engine, scopes []string) string {
		w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: 4000, PerMessage: 4, TailPercent: 20, DryRun: true, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return w.Memory
	}
	if !strings.Contains(window(e, nil), "Elm Street") {
		t.Fatal("untagged message not recalled")
	}
	if _, err := e.Tag(k, 3, []string{"nope"}, nil, []string{"private"}); err == nil {
		t.Fatal("unknown tag accepted")
	}
	if _, err := e.Tag(k, 3, []string{"private"}, nil, []string{"private"}); err != nil {
		t.Fatal(err)
	}
	if m := window(e, nil); strings.Contains(m, "Elm Street") || strings.Contains(m, "therapist") {
		t.Fatalf("tagged message leaked:\n%s", m)
	}
	if !strings.Contains(window(e, []string{"private"}), "Elm Street") {
		t.Fatal("cleared caller lost the tagged message")
	}
	e.Close()
	// Tags survive a restart, and can be removed.
	e, err = Open(Options{Dir: dir, Now: fixedClock(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if strings.Contains(window(e, nil), "Elm Street") {
		t.Fatal("tag lost on restart")
	}
	if _, err := e.Tag(k, 3, nil, []string{"private"}, []string{"private"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(window(e, nil), "Elm Street") {
		t.Fatal("untagging did not restore the message")
	}
}

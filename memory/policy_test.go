package memory

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/policy"
)

// openScopedEngine opens an in-memory engine whose policy redacts cards
// and e-mail addresses for callers without pii and withholds anything about
// project Nightjar from callers without internal.
func openScopedEngine(t *testing.T) *Engine {
	t.Helper()
	pol, err := policy.Compile([]policy.Rule{
		{Name: "cards", Detector: "credit_card", Action: "redact", AllowScopes: []string{"pii"}},
		{Name: "emails", Detector: "email", Action: "redact", AllowScopes: []string{"pii"}},
		{Name: "internal", Pattern: `(?i)project\s+nightjar`, Action: "exclude", AllowScopes: []string{"internal"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := testOpen(t, Options{Now: fixedClock(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestPolicyFiltersMemoryByScope(t *testing.T) {
	e := openScopedEngine(t)
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
	c, _, _ := e.get(k, false)
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
		e, err := testOpen(t, Options{Now: fixedClock()})
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
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Policy: pol})
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
	e, err = testOpen(t, Options{Dir: dir, Now: fixedClock(), Policy: pol})
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

// TestAdminViewNoWiderThanWindow: the message listing of a caller without
// clearance shows no more than a window would: leading system prompts and
// names are redacted like any text, a system prompt an exclude rule covers
// is withheld, and tags of a rule can be changed only by a caller cleared
// for it (removing a tag never reveals what the rule's detector found).
func TestAdminViewNoWiderThanWindow(t *testing.T) {
	e := openScopedEngine(t)
	k := Key{Tenant: "acme", Context: "alice"}
	named := msg("user", "Hello, please greet me by my name.")
	named.Name = "alice.w@example.com"
	if _, err := e.Prepare(Request{Key: k, Messages: []Message{
		msg("system", "You are a bank assistant. The customer's card is 4111 1111 1111 1111."),
		named,
		msg("user", "Pay with ４１１１ １１１１ １１１１ １１１１ please."),
	}, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Prepare(Request{Key: Key{Tenant: "acme", Context: "alice", Thread: "ops"}, Messages: []Message{
		msg("system", "Project Nightjar operations. The launch code is OWL-771."),
		msg("user", "Status?"),
	}, Budget: 2000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	list := func(scopes []string) string {
		t.Helper()
		msgs, err := e.Messages(k, 0, 100, scopes)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for _, m := range msgs {
			fmt.Fprintf(&sb, "%d %s name=%q %q tags=%v\n", m.Seq, m.Role, m.Name, m.Text, m.Tags)
		}
		return sb.String()
	}
	basic := list([]string{"basic"})
	for _, s := range []string{"4111", "４１１１", "alice.w", "OWL-771", "Nightjar"} {
		if strings.Contains(basic, s) {
			t.Errorf("listing without clearance holds %q:\n%s", s, basic)
		}
	}
	if !strings.Contains(basic, WithheldText) || !strings.Contains(basic, "[redacted:credit_card]") || !strings.Contains(basic, "[redacted:email]") {
		t.Errorf("listing without clearance lacks placeholders:\n%s", basic)
	}
	if pii := list([]string{"pii"}); !strings.Contains(pii, "4111 1111 1111 1111") || !strings.Contains(pii, "alice.w@example.com") || strings.Contains(pii, "OWL-771") {
		t.Errorf("pii listing:\n%s", pii)
	}

	// Tags: only a caller cleared for the rule may change them.
	for _, c := range []struct {
		add, remove []string
	}{{nil, []string{"cards"}}, {[]string{"cards"}, nil}, {[]string{"internal"}, nil}} {
		if _, err := e.Tag(k, 2, c.add, c.remove, []string{"basic", "admin"}); !errors.Is(err, ErrForbidden) {
			t.Errorf("Tag(add %v, remove %v) without clearance: %v, want ErrForbidden", c.add, c.remove, err)
		}
	}
	if _, err := e.Tag(k, 2, nil, []string{"cards"}, []string{"pii"}); err != nil {
		t.Fatal(err)
	}
	if basic := list([]string{"basic"}); strings.Contains(basic, "4111") || strings.Contains(basic, "４１１１") {
		t.Errorf("removing the cards tag revealed the card:\n%s", basic)
	}
	// A whole-message tag on a leading system prompt (no blocks) holds.
	if _, err := e.Tag(k, 0, []string{"emails"}, nil, []string{"pii"}); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := e.Messages(k, 0, 1, nil); msgs[0].Text != WithheldText || !slices.Contains(msgs[0].Tags, "emails") {
		t.Errorf("tagged leading prompt listed as %+v", msgs[0])
	}
	if msgs, _ := e.Messages(k, 0, 1, []string{"pii"}); msgs[0].Text == WithheldText {
		t.Errorf("cleared caller lost the tagged leading prompt")
	}
}

// TestTagRemovalKeepsDetectorSpans: removing a rule's tag from a message
// lifts only what was tagged by hand, never a span the rule's detector
// found, even one that covers a whole block (a message that is only an
// e-mail address), nor an exclude rule's mark on the whole message; a
// hand tag added on top of such a span, then removed, leaves the span;
// and what holds in memory holds after a restart.
func TestTagRemovalKeepsDetectorSpans(t *testing.T) {
	dir := t.TempDir()
	pol, err := policy.Compile([]policy.Rule{
		{Name: "emails", Detector: "email", Action: "redact", AllowScopes: []string{"pii"}},
		{Name: "internal", Pattern: `(?i)project\s+nightjar`, Action: "exclude", AllowScopes: []string{"internal"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	open := func() *Engine {
		e, err := Open(Options{Dir: dir, Now: fixedClock(), Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	k := Key{Tenant: "acme", Context: "carol"}
	conv := conversation(12, 6)
	conv[3] = msg("user", "alice.w@example.com")
	conv[7] = msg("user", "Project Nightjar")
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4000, PerMessage: 4, TailPercent: 20}); err != nil {
		t.Fatal(err)
	}
	seen := func(e *Engine) string {
		t.Helper()
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "What e-mail address and which project did I mention?")}, Budget: 4000, PerMessage: 4, TailPercent: 20, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := e.Messages(k, 0, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		sb.WriteString(w.Memory)
		for _, m := range msgs {
			sb.WriteString("\n" + m.Text)
		}
		return sb.String()
	}
	check := func(e *Engine, when string) {
		t.Helper()
		if s := seen(e); strings.Contains(s, "alice.w") || strings.Contains(s, "Nightjar") {
			t.Errorf("%s: recall or listing without clearance shows what the detectors found:\n%s", when, s)
		}
	}
	check(e, "before any tag change")
	all := []string{"pii", "internal"}
	if _, err := e.Tag(k, 3, nil, []string{"emails"}, all); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Tag(k, 7, nil, []string{"internal"}, all); err != nil {
		t.Fatal(err)
	}
	check(e, "after removing the tags")
	// A hand tag on top of the detector's span, then removed.
	if tags, err := e.Tag(k, 3, []string{"emails"}, nil, all); err != nil || !slices.Equal(tags, []string{"emails"}) {
		t.Fatalf("tag: %v %v", tags, err)
	}
	if tags, err := e.Tag(k, 3, nil, []string{"emails"}, all); err != nil || !slices.Equal(tags, []string{"emails"}) {
		t.Fatalf("untag: %v %v (the detector's span still tags the message)", tags, err)
	}
	check(e, "after tagging and untagging")
	e.Close()
	e = open()
	defer e.Close()
	check(e, "after a restart")
	if s := seen(e); !strings.Contains(s, "[redacted:email]") {
		t.Errorf("no placeholder where the address was:\n%s", s)
	}
}

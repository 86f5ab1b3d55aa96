package memory

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestWindowExplainsItself: the entry that recalls a planted fact says it
// was expanded for the question in round 1, with its score and the
// question's terms it matched; every entry has a reason; the relevant
// blocks left out say why.
func TestWindowExplainsItself(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "why"}
	conv := conversation(120, 5)
	for i := 11; i < len(conv); i += 8 {
		conv[i].Text = fmt.Sprintf("My cat Biscuit likes toy number %d. ", i) + conv[i].Text
	}
	if _, err := e.Import(k, conv, e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	ask := []Message{msg("user", "What is my locker combination?")}
	w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: 1200, PerMessage: 4, TailPercent: 40, DryRun: true, AsLive: true, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	var hit *EntryInfo
	for i, en := range w.Entries {
		if en.Reason == "" {
			t.Errorf("entry %d (%d/%d) has no reason", i, en.Level, en.Index)
		}
		if en.Reason == "expanded" && (en.Round < 1 || en.Score < 0) {
			t.Errorf("expanded entry %d: round %d score %v", i, en.Round, en.Score)
		}
		if en.Detail == "verbatim" && slices.Contains(en.Terms, "locker") {
			hit = &w.Entries[i]
		}
	}
	if hit == nil {
		t.Fatalf("no verbatim entry matched \"locker\":\n%s", w.Memory)
	}
	if hit.Reason != "expanded" || hit.Round != 1 || hit.Score <= 0 || !slices.Contains(hit.Terms, "combination") {
		t.Errorf("the locker entry: %+v", *hit)
	}
	// A question whose words are everywhere leaves strong matches out for
	// lack of budget, and weak ones below the threshold.
	w, err = e.Prepare(Request{Key: k, Messages: []Message{msg("user", "Which toys does my cat Biscuit like?")}, Budget: 500, PerMessage: 4, TailPercent: 40, DryRun: true, AsLive: true, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	whys := map[string]int{}
	for _, om := range w.OmittedMatches {
		whys[om.Why]++
		if om.Score <= 0 || om.Round < 1 {
			t.Errorf("omitted match %+v", om)
		}
		for _, en := range w.Entries {
			if en.Level == 0 && en.Detail == "verbatim" && en.First == om.Block {
				t.Errorf("block %d is shown and listed as omitted", om.Block)
			}
		}
	}
	if whys["budget"] == 0 || len(w.OmittedMatches) > maxOmittedMatches {
		t.Errorf("omitted matches by why: %v (%d)", whys, len(w.OmittedMatches))
	}
}

// TestPolicyOmissionExplained: a relevant block the caller may not see is
// listed as omitted for policy, without its terms.
func TestPolicyOmissionExplained(t *testing.T) {
	e := openScopedEngine(t)
	k := Key{Tenant: "acme", Context: "alice"}
	conv := conversation(40, 3)
	conv[9] = msg("user", "Status of project Nightjar: the launch code is OWL-771.")
	if _, err := e.Import(k, conv, e.opts.Now()); err != nil {
		t.Fatal(err)
	}
	ask := []Message{msg("user", "What is the launch code of project Nightjar?")}
	for _, scopes := range [][]string{nil, {"internal"}} {
		w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: 3000, PerMessage: 4, TailPercent: 30, DryRun: true, AsLive: true, Explain: true, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		policyOmitted := 0
		for _, om := range w.OmittedMatches {
			if om.Why == "policy" {
				policyOmitted++
				if len(om.Terms) > 0 {
					t.Errorf("a policy omission names terms: %+v", om)
				}
			}
		}
		if (policyOmitted > 0) != (scopes == nil) {
			t.Errorf("scopes %v: %d policy omissions: %+v", scopes, policyOmitted, w.OmittedMatches)
		}
	}
}

// TestEveryEntryHasAReason: over random histories, budgets and layouts,
// every entry of every window has a reason, expanded entries their round,
// and every omitted match a why.
func TestEveryEntryHasAReason(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		render := rapid.SampledFrom([]string{RenderOutline, RenderChronological}).Draw(t, "render")
		e, err := testOpen(t, Options{Now: fixedClock(), Render: render})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		k := Key{Tenant: "p", Context: "c"}
		conv := conversation(rapid.IntRange(1, 80).Draw(t, "turns"), rapid.Uint64().Draw(t, "seed"))
		if _, err := e.Import(k, conv, e.opts.Now()); err != nil {
			t.Fatal(err)
		}
		q := conv[rapid.IntRange(1, len(conv)-1).Draw(t, "ask")].Text
		q = q[:min(len(q), rapid.IntRange(5, 80).Draw(t, "qlen"))]
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: rapid.IntRange(100, 4000).Draw(t, "budget"), PerMessage: 4, TailPercent: 40, DryRun: true, AsLive: true, Explain: true})
		if err != nil {
			return
		}
		for _, en := range w.Entries {
			switch en.Reason {
			case "outline", "recent":
				if en.Score != 0 || en.Round != 0 {
					t.Fatalf("%s entry with score %v round %d", en.Reason, en.Score, en.Round)
				}
			case "expanded":
				if en.Round < 1 || en.Round > 3 {
					t.Fatalf("expanded entry in round %d", en.Round)
				}
			case "hysteresis", "weak match", "context":
			default:
				t.Fatalf("entry with reason %q", en.Reason)
			}
		}
		for _, om := range w.OmittedMatches {
			if om.Why != "budget" && om.Why != "below threshold" && om.Why != "policy" {
				t.Fatalf("omitted match with why %q", om.Why)
			}
		}
	})
}

package memory

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// rescanLog records the engine's rescan log lines.
type rescanLog struct {
	mu    sync.Mutex
	lines []map[string]int64
}

func (l *rescanLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *rescanLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *rescanLog) WithGroup(string) slog.Handler            { return l }
func (l *rescanLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "rescan") {
		return nil
	}
	line := map[string]int64{}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Value.Kind() {
		case slog.KindInt64:
			line[a.Key] = a.Value.Int64()
		case slog.KindDuration:
			line[a.Key] = int64(a.Value.Duration())
		}
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}

// count returns how many rescans were logged.
func (l *rescanLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// last returns the last rescan's figures.
func (l *rescanLog) last() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return nil
	}
	return l.lines[len(l.lines)-1]
}

func mustPolicy(t testing.TB, rules ...policy.Rule) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	ruleCards    = policy.Rule{Name: "cards", Detector: "credit_card", AllowScopes: []string{"pii"}}
	ruleInternal = policy.Rule{Name: "internal", Pattern: `(?i)nightjar`, Action: "exclude", AllowScopes: []string{"internal"}}
	rulePrivate  = policy.Rule{Name: "private", Pattern: `\bzzzz\b`, AllowScopes: []string{"private"}}
)

// gistLeaks returns what of secrets a gist or headline of k carries.
func gistLeaks(t *testing.T, e *Engine, k Key, secrets []string) []string {
	t.Helper()
	c, err := e.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.mu.Unlock()
	var out []string
	for l := 1; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			n := c.tree.Node(l, i)
			for _, s := range secrets {
				if strings.Contains(n.Text, s) || strings.Contains(n.Short, s) {
					out = append(out, fmt.Sprintf("gist %d/%d: %q", l, i, s))
				}
			}
		}
	}
	return out
}

// TestRescanOnPolicyChange stores cards (one obfuscated) under a policy
// without a card rule, tags a message by hand, and reopens the store with
// a card rule: a new chat's window never recalls the cards, no gist or
// headline carries them, the hand-made tag holds, and a second open does
// not rescan. Reopened without the rule, the cards are recalled again and
// the tag still holds.
func TestRescanOnPolicyChange(t *testing.T) {
	dir := t.TempDir()
	logs := &rescanLog{}
	open := func(p *policy.Policy) *Engine {
		t.Helper()
		e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: 32, Fanout: 4, Policy: p, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	before := mustPolicy(t, ruleInternal, rulePrivate)
	after := mustPolicy(t, ruleCards, ruleInternal, rulePrivate)
	k := Key{Tenant: "acme", Context: "alice"}
	conv := conversation(40, 3)
	conv[5] = msg("user", "Please charge my card 4012 8888 8888 1881 for the Grand Budapest hotel booking.")
	conv[9] = msg("user", "My backup card for travel is ４５３９.１４８８.０３４３.６４６７ — use it abroad.")
	conv[13] = msg("user", "The boat's launch code is OWL-771, kept at the harbor office.")
	secrets := []string{"4012", "8888", "1881", "４５３９", "６４６７", "OWL-771"}

	e := open(before)
	for i := 2; i <= len(conv); i += 2 {
		if _, err := e.Prepare(Request{Key: k, Messages: conv[:i], Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Tag(k, 13, []string{"private"}, nil, []string{"private"}); err != nil {
		t.Fatal(err)
	}
	ask := []Message{msg("user", "Which card did I use for the Grand Budapest hotel booking, which backup card for travel abroad, and the boat's launch code?")}
	window := func(e *Engine, scopes []string) string {
		t.Helper()
		w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: 3000, PerMessage: 4, TailPercent: 30, DryRun: true, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return w.Memory
	}
	// Without a card rule the cards are recalled (so that, below, their
	// absence is the policy's doing), the tagged message is not.
	if m := window(e, nil); !strings.Contains(m, "4012 8888 8888 1881") || !strings.Contains(m, "４５３９.１４８８") || strings.Contains(m, "OWL-771") {
		t.Fatalf("before the rule, memory:\n%s", m)
	}
	e.Close()
	if logs.count() != 0 {
		t.Fatalf("a context stored under the engine's own policy was rescanned: %v", logs.last())
	}

	e = open(after)
	m := window(e, nil)
	for _, s := range secrets {
		if strings.Contains(m, s) {
			t.Errorf("recalled %q after the card rule was added:\n%s", s, m)
		}
	}
	if !strings.Contains(m, "Grand Budapest") || strings.Count(m, "[redacted:credit_card]") < 2 {
		t.Errorf("the messages holding the cards were not recalled, redacted:\n%s", m)
	}
	if leaks := gistLeaks(t, e, k, secrets); len(leaks) > 0 {
		t.Errorf("gists carry secrets after the rescan: %v", leaks)
	}
	if cleared := window(e, []string{"pii", "private"}); !strings.Contains(cleared, "4012 8888 8888 1881") || !strings.Contains(cleared, "OWL-771") {
		t.Errorf("a cleared caller lost the originals:\n%s", cleared)
	}
	if listed, err := e.Messages(k, 13, 1, nil); err != nil || listed[0].Text != WithheldText || !slices.Contains(listed[0].Tags, "private") {
		t.Errorf("the hand-made tag did not survive the rescan: %+v %v", listed, err)
	}
	if listed, _ := e.Messages(k, 5, 1, []string{"pii"}); !slices.Contains(listed[0].Tags, "cards") {
		t.Errorf("the card's message is not tagged: %+v", listed[0])
	}
	if logs.count() != 1 || logs.last()["blocks"] < 2 || logs.last()["gists"] < 2 || logs.last()["retagged"] < 2 {
		t.Errorf("rescans logged: %d, last %v", logs.count(), logs.last())
	}
	e.Close()

	// Once per policy change: the next open finds its fingerprint stored.
	e = open(after)
	if m := window(e, nil); strings.Contains(m, "4012") || strings.Contains(m, "OWL-771") {
		t.Errorf("leak on the second open:\n%s", m)
	}
	if logs.count() != 1 {
		t.Errorf("the second open rescanned again: %v", logs.last())
	}
	e.Close()

	// The rule removed: what it found is recalled again; the tag holds.
	e = open(before)
	defer e.Close()
	if m := window(e, nil); !strings.Contains(m, "4012 8888 8888 1881") || strings.Contains(m, "OWL-771") {
		t.Errorf("after the rule was removed, memory:\n%s", m)
	}
	if logs.count() != 2 {
		t.Errorf("removing a rule did not rescan (%d rescans)", logs.count())
	}
}

// TestRescanClipsSpansAcrossBlocks: a card stored before it was a card,
// in small blocks that cut through it, is hidden in both blocks once the
// rule exists, and so in windows and gists.
func TestRescanClipsSpansAcrossBlocks(t *testing.T) {
	dir := t.TempDir()
	open := func(p *policy.Policy) *Engine {
		t.Helper()
		e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: 6, Fanout: 2, Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	k := Key{Tenant: "acme", Context: "split"}
	card := "4012 8888 8888 1881"
	text := "For the Grand Budapest booking please charge the card " + card + " on arrival, not before."
	e := open(nil)
	conv := append(conversation(6, 9), msg("user", text), msg("assistant", "Noted."))
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.acquire(k, false)
	m := c.msgs[len(conv)-2]
	cut := false
	for b := m.First; b <= m.Last; b++ {
		if n := c.tree.Block(b); strings.Contains(text, n.Text) && !strings.Contains(n.Text, card) && strings.Contains(n.Text, "8888") {
			cut = true
		}
	}
	c.mu.Unlock()
	if !cut {
		t.Fatal("precondition: no block boundary falls inside the card; pick another block size")
	}
	e.Close()

	e = open(mustPolicy(t, ruleCards))
	defer e.Close()
	c, _ = e.acquire(k, false)
	m = c.msgs[len(conv)-2]
	for b := m.First; b <= m.Last; b++ {
		n := c.tree.Block(b)
		out, _, _ := e.opts.Policy.Apply(n.Text, toPolicySpans(n.Spans), nil)
		for _, g := range []string{"4012", "8888", "1881"} {
			if strings.Contains(out, g) {
				t.Errorf("block %d shows %q: %q (spans %v)", b, g, out, n.Spans)
			}
		}
	}
	c.mu.Unlock()
	if leaks := gistLeaks(t, e, k, []string{"4012", "8888", "1881"}); len(leaks) > 0 {
		t.Errorf("gists carry the card: %v", leaks)
	}
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "Which card for the Grand Budapest booking?")}, Budget: 3000, PerMessage: 4, TailPercent: 30, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "Grand Budapest") || strings.Contains(w.Memory, "8888") {
		t.Errorf("window:\n%s", w.Memory)
	}
}

// TestRescanKeepsLegacyWholeTags: a tag added through the admin API before
// tags were recorded on the message (only as whole-block spans) survives a
// rescan, and an admin can still remove it.
func TestRescanKeepsLegacyWholeTags(t *testing.T) {
	dir := t.TempDir()
	pol := mustPolicy(t, rulePrivate)
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Tenant: "acme", Context: "legacy"}
	conv := conversation(10, 4)
	conv[3] = msg("user", "My therapist appointment is on Thursday at the Elm Street clinic.")
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4000, PerMessage: 4, TailPercent: 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Tag(k, 3, []string{"private"}, nil, []string{"private"}); err != nil {
		t.Fatal(err)
	}
	// Make it a record of before Whole and of before fingerprints.
	c, _ := e.acquire(k, false)
	c.msgs[3].Whole = nil
	kv, err := e.msgRecordKV(c, c.msgs[3])
	if err != nil {
		t.Fatal(err)
	}
	c.rec.Policy = ""
	if err := e.st.Put(kv, store.KV{Key: headerKey(k), Value: mustJSON(c.rec)}); err != nil {
		t.Fatal(err)
	}
	c.mu.Unlock()
	e.Close()

	logs := &rescanLog{}
	e, err = testOpen(t, Options{Dir: dir, Now: fixedClock(), Policy: pol, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "When is my therapist appointment at the clinic?")}, Budget: 4000, PerMessage: 4, TailPercent: 20, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if logs.count() != 1 {
		t.Fatal("a header without a fingerprint did not rescan")
	}
	if strings.Contains(w.Memory, "Elm Street") {
		t.Fatalf("legacy tag lost in the rescan:\n%s", w.Memory)
	}
	// An admin still lifts it.
	if tags, err := e.Tag(k, 3, nil, []string{"private"}, []string{"private"}); err != nil || len(tags) != 0 {
		t.Fatalf("untag: %v %v", tags, err)
	}
	w, err = e.Prepare(Request{Key: k, Messages: []Message{msg("user", "When is my therapist appointment at the clinic?")}, Budget: 4000, PerMessage: 4, TailPercent: 20, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "Elm Street") {
		t.Fatalf("legacy tag not lifted:\n%s", w.Memory)
	}
}

// TestRescanPropertyHidesWhatThePolicyFinds stores random messages with
// cards and e-mail addresses (plain and obfuscated) in random block sizes
// under a random older policy, reopens under the full policy and checks
// that every byte the policy finds in a message is covered, in the block
// that holds it, by a span of a rule, and that a rescan of what was stored
// under the full policy changes nothing (ingest and rescan agree).
func TestRescanPropertyHidesWhatThePolicyFinds(t *testing.T) {
	full := []policy.Rule{ruleCards, {Name: "emails", Detector: "email"}, ruleInternal}
	values := []string{"4012 8888 8888 1881", "4539-1488-0343-6467", "５５５５ ５５５５ ５５５５ ４４４４", "alice@example.com", "bob (at) example.org", "carol＠example.net"}
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "rescan-prop")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		blockTokens := rapid.IntRange(3, 24).Draw(rt, "blockTokens")
		older := rapid.SliceOfNDistinct(rapid.IntRange(0, len(full)-1), 0, len(full)-1, rapid.ID).Draw(rt, "older")
		var oldRules []policy.Rule
		for _, i := range older {
			oldRules = append(oldRules, full[i])
		}
		logs := &rescanLog{}
		open := func(rules []policy.Rule) *Engine {
			e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: blockTokens, Fanout: 2, Policy: mustPolicy(t, rules...), Logger: slog.New(logs)})
			if err != nil {
				rt.Fatal(err)
			}
			return e
		}
		k := Key{Tenant: "t", Context: "p"}
		var conv []Message
		for i := rapid.IntRange(1, 8).Draw(rt, "turns"); i > 0; i-- {
			words := rapid.SliceOfN(rapid.SampledFrom(append(slices.Clone(values), "the", "garden", "river", "Nightjar", "card", "mail")), 1, 20).Draw(rt, "words")
			conv = append(conv, msg("user", strings.Join(words, " ")), msg("assistant", "ok "+words[0]))
		}
		e := open(oldRules)
		if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 100000, PerMessage: 4, TailPercent: 30}); err != nil {
			rt.Fatal(err)
		}
		e.Close()

		e = open(full)
		c, err := e.acquire(k, false)
		if err != nil {
			rt.Fatal(err)
		}
		checkCovered(rt, e, c)
		c.mu.Unlock()
		e.Close()

		// Stored under the full policy: a forced rescan finds nothing to do.
		k2 := Key{Tenant: "t", Context: "q"}
		e = open(full)
		if _, err := e.Prepare(Request{Key: k2, Messages: conv, Budget: 100000, PerMessage: 4, TailPercent: 30}); err != nil {
			rt.Fatal(err)
		}
		c, _ = e.acquire(k2, false)
		c.rec.Policy = "older"
		if err := e.st.Put(store.KV{Key: headerKey(k2), Value: mustJSON(c.rec)}); err != nil {
			rt.Fatal(err)
		}
		c.mu.Unlock()
		e.Close()
		n := logs.count()
		e = open(full)
		defer e.Close()
		if _, err := e.Stats(k2); err != nil {
			rt.Fatal(err)
		}
		if logs.count() != n+1 {
			rt.Fatalf("no rescan of a changed fingerprint")
		}
		if l := logs.last(); l["blocks"] != 0 || l["retagged"] != 0 || l["gists"] != 0 {
			rt.Fatalf("rescan of what ingest tagged under the same policy changed it: %v", l)
		}
	})
}

// checkCovered checks that every span the engine's policy finds in a
// stored message is covered byte for byte by the spans of its blocks, so
// that no block, redacted for nobody, shows a byte of it.
func checkCovered(t *rapid.T, e *Engine, c *mctx) {
	for _, m := range c.msgs {
		if m.First < 0 {
			continue
		}
		off := 0
		for b := m.First; b <= m.Last; b++ {
			n := c.tree.Block(b)
			for _, s := range e.opts.Policy.Scan(m.Text) {
				for i := max(s.Start, off); i < min(s.End, off+len(n.Text)); i++ {
					if !slices.ContainsFunc(n.Spans, func(sp tree.Span) bool { return sp.Start <= i-off && i-off < sp.End }) {
						t.Fatalf("message %d byte %d (%s span %d-%d) not covered in block %d %q: %v", m.Seq, i, s.Rule, s.Start, s.End, b, n.Text, n.Spans)
					}
				}
			}
			off += len(n.Text)
		}
	}
}

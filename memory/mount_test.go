package memory

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/tree"
)

// handbook stores a team's knowledge under k: facts among filler turns.
func handbook(t testing.TB, e *Engine, k Key, facts []string, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 11))
	conv := []Message{msg("system", "Team knowledge base.")}
	for i, f := range facts {
		conv = append(conv, msg("user", filler(r, 30)+". "+f), msg("assistant", filler(r, 40)))
		if i%2 == 0 {
			conv = append(conv, msg("user", filler(r, 50)), msg("assistant", filler(r, 50)))
		}
	}
	if _, err := e.Import(k, conv, time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
}

// mountEngine opens an engine whose policy redacts e-mail addresses for
// callers without "pii", and names the own memory and the team's.
func mountEngine(t *testing.T) (e *Engine, me, team Key) {
	t.Helper()
	pol, err := policy.Compile([]policy.Rule{{Name: "emails", Detector: "email", AllowScopes: []string{"pii"}}})
	if err != nil {
		t.Fatal(err)
	}
	return openWith(t, "", pol, 8), Key{Tenant: "acme", Context: "alice"}, Key{Tenant: "acme", Context: "team-handbook"}
}

// TestOmittedIgnoresMountedBlocks: a block a mounted memory showed
// verbatim does not count as the own block of the same index shown, so
// that one stays among the omitted matches.
func TestOmittedIgnoresMountedBlocks(t *testing.T) {
	blocks := []*tree.Node{{Msg: 0}, {Msg: 1}, {Msg: 2}}
	w := &Window{
		Entries: []EntryInfo{{Level: 0, First: 0, Last: 0, Detail: "verbatim"}, {Memory: "team", Level: 0, First: 2, Last: 2, Detail: "verbatim"}},
		why:     &whyInput{blocks: blocks, scores: map[int]float64{0: 3, 2: 2}, minRelevance: 0.35},
	}
	e := &Engine{}
	e.omitted(w)
	if len(w.OmittedMatches) != 1 || w.OmittedMatches[0].Block != 2 || w.OmittedMatches[0].Why != "budget" {
		t.Fatalf("omitted %+v, want the own block 2 (budget)", w.OmittedMatches)
	}
}

func TestMountsCompeteAndNameTheirOrigin(t *testing.T) {
	e, me, team := mountEngine(t)
	faq := Key{Tenant: "acme", Context: "product-faq"}
	handbook(t, e, team, []string{
		"The VPN gateway for the office is vpn-east-3.corp and needs the Tunnelblick client.",
		"Expense reports go to finance-desk@example.com before the 5th of each month.",
		"The fire assembly point is the north car park.",
	}, 1)
	handbook(t, e, faq, []string{"The Pro plan allows 25 seats; the Team plan allows 10."}, 2)
	if _, err := e.Import(me, conversation(40, 4), time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	before, _ := e.Stats(team)
	ask := func(q string, scopes []string) *Window {
		t.Helper()
		r := Request{Key: me, Messages: []Message{msg("user", q)}, Budget: 1500, PerMessage: 4, TailPercent: 30, Scopes: scopes,
			Mounts: []string{"team-handbook", "product-faq", "alice"}}
		w, err := e.Prepare(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := promptTokens(e.Counter(), r, w); got > r.Budget {
			t.Fatalf("prompt %d tokens > budget %d", got, r.Budget)
		}
		return w
	}
	w := ask("Which VPN gateway does the office use, and which client?", nil)
	i := strings.Index(w.Memory, MountPreamble("team-handbook"))
	if i < 0 || !strings.Contains(w.Memory[i:], "vpn-east-3.corp") || strings.Count(w.Memory, "<memory") != 2 {
		t.Fatalf("the handbook's answer is not in its part of the window:\n%s", w.Memory)
	}
	if strings.Contains(w.Memory, MountPreamble("product-faq")) || strings.Contains(w.Memory, MountPreamble("alice")) {
		t.Fatalf("an irrelevant mount, or the own memory as a mount, took budget:\n%s", w.Memory)
	}
	named := false
	for _, en := range w.Entries {
		if en.Memory == "team-handbook" && en.Level == 0 && strings.Contains(w.Memory[en.At[0]:en.At[1]], "vpn-east-3.corp") {
			named = true
		}
	}
	if !named {
		t.Fatalf("no entry names the handbook: %+v", w.Entries)
	}
	// The caller's scopes filter a mount exactly as the own memory.
	w = ask("Where do expense reports go?", nil)
	if strings.Contains(w.Memory, "finance-desk@example.com") || !strings.Contains(w.Memory, "[redacted:email]") {
		t.Fatalf("the mount's e-mail for a caller without pii:\n%s", w.Memory)
	}
	if w = ask("Where do expense reports go?", []string{"pii"}); !strings.Contains(w.Memory, "finance-desk@example.com") {
		t.Fatalf("the mount's e-mail for a caller with pii:\n%s", w.Memory)
	}
	// A question about the own memory leaves the mounts out.
	w = ask("What is my locker combination?", nil)
	if strings.Contains(w.Memory, "<memory from=") || !strings.Contains(w.Memory, "4471-QK-93") {
		t.Fatalf("own question:\n%s", w.Memory)
	}
	// Mounts are read-only, and of the tenant only.
	if after, _ := e.Stats(team); after.Messages != before.Messages || after.Tokens != before.Tokens {
		t.Fatal("a request changed its mount")
	}
	_, err := e.Prepare(Request{Key: Key{Tenant: "other", Context: "bob"}, Messages: []Message{msg("user", "VPN?")}, Budget: 1500, PerMessage: 4, TailPercent: 30, Mounts: []string{"team-handbook"}})
	if !errors.Is(err, ErrMountNotFound) {
		t.Fatalf("another tenant's mount: %v", err)
	}
	if st, err := e.Stats(Key{Tenant: "other", Context: "bob"}); err == nil && st.Messages > 0 {
		t.Fatal("a request refused for its mount stored its message")
	}
}

// TestMountedWindowsFitProperty: with mounts of any size and any budget,
// the prompt fits, and the same request gives the same window.
func TestMountedWindowsFitProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := openWith(t, "", nil, rapid.IntRange(2, 9).Draw(t, "f"))
		me := Key{Tenant: "p", Context: "me"}
		var mounts []string
		for i := range rapid.IntRange(1, 3).Draw(t, "mounts") {
			k := Key{Tenant: "p", Context: fmt.Sprint("m", i)}
			if _, err := e.Import(k, conversation(rapid.IntRange(1, 40).Draw(t, "turns"), uint64(i)), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			mounts = append(mounts, k.Context)
		}
		conv := conversation(rapid.IntRange(0, 30).Draw(t, "own"), 9)
		conv = append(conv, msg("user", rapid.SampledFrom([]string{"What is my cat named?", "garden river mountain?", "locker 4471"}).Draw(t, "q")))
		r := Request{Key: me, Messages: conv, Budget: rapid.IntRange(100, 5000).Draw(t, "budget"), PerMessage: 4, TailPercent: 30, Mounts: mounts}
		w, err := e.Prepare(r)
		if errors.Is(err, ErrTooLong) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := promptTokens(e.Counter(), r, w); got > r.Budget {
			t.Fatalf("prompt %d tokens > budget %d (window says %d)\n%s", got, r.Budget, w.Tokens, w.Memory)
		}
		r.DryRun = true
		w1, _ := e.Prepare(r)
		w2, _ := e.Prepare(r)
		if w1.Memory != w2.Memory {
			t.Fatal("two dry runs differ")
		}
	})
}

// TestCrossMountsDoNotDeadlock: requests of two memories mounting each
// other, at once.
func TestCrossMountsDoNotDeadlock(t *testing.T) {
	e := openWith(t, "", nil, 8)
	a, b := Key{Tenant: "t", Context: "a"}, Key{Tenant: "t", Context: "b"}
	for _, k := range []Key{a, b} {
		if _, err := e.Import(k, conversation(10, 1), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		own, other := a, b
		if i%2 == 1 {
			own, other = b, a
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if _, err := e.Prepare(Request{Key: own, Messages: []Message{msg("user", fmt.Sprint("garden ", i, j))}, Budget: 800, PerMessage: 4, TailPercent: 30, Mounts: []string{other.Context}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("requests mounting each other deadlocked")
	}
}

// TestKeptWindowsShowMounts: a kept window shows the mounted memories' part
// of the memory text as the model saw it, rendered for the viewer's
// clearances, each mounted entry's bytes and terms its own memory's (and
// so does a dry run's explanation).
func TestKeptWindowsShowMounts(t *testing.T) {
	e, me, team := mountEngine(t)
	handbook(t, e, team, []string{
		"The VPN gateway for the office is vpn-east-3.corp and needs the Tunnelblick client.",
		"VPN trouble goes to netops@example.com with the gateway name.",
	}, 1)
	if _, err := e.Import(me, conversation(40, 4), time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	r := Request{Key: me, Messages: []Message{msg("user", "Which VPN gateway does the office use, and whom do I mail about VPN trouble?")},
		Budget: 1500, PerMessage: 4, TailPercent: 30, Scopes: []string{"pii"}, Mounts: []string{"team-handbook"}}
	w, err := e.Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "netops@example.com") {
		t.Fatalf("the mount's answer is not in the window:\n%s", w.Memory)
	}
	e.KeepWindow(w, WindowMeta{Budget: r.Budget, Tokens: w.Tokens, Status: 200})
	// A dry run explains the mounted entries from the mount's blocks.
	dr := r
	dr.DryRun, dr.Explain = true, true
	d, err := e.Prepare(dr)
	if err != nil {
		t.Fatal(err)
	}
	termed := false
	for _, en := range d.Entries {
		if en.Memory == "team-handbook" && en.Reason == "expanded" && strings.Contains(d.Memory[en.At[0]:en.At[1]], "vpn-east-3.corp") {
			termed = slices.Contains(en.Terms, "vpn")
		}
	}
	if !termed {
		t.Fatalf("the dry run's mounted entry with the gateway lacks the term \"vpn\": %+v", d.Entries)
	}
	for _, tc := range []struct {
		scopes   []string
		want     string
		redacted bool
	}{{[]string{"pii"}, w.Memory, false}, {nil, "", true}} {
		ws, err := e.Windows(me, tc.scopes)
		if err != nil || len(ws) != 1 {
			t.Fatalf("windows: %v, %d", err, len(ws))
		}
		v := ws[0]
		if tc.want != "" && v.Memory != tc.want {
			t.Fatalf("kept window for %v:\n%s\nwant the memory text sent:\n%s", tc.scopes, v.Memory, tc.want)
		}
		i := strings.Index(v.Memory, MountPreamble("team-handbook"))
		if i < 0 || !strings.Contains(v.Memory[i:], "vpn-east-3.corp") {
			t.Fatalf("kept window for %v lacks the mount's part:\n%s", tc.scopes, v.Memory)
		}
		if tc.redacted && (strings.Contains(v.Memory, "netops@example.com") || !strings.Contains(v.Memory[i:], "[redacted:email]")) {
			t.Fatalf("kept window for a viewer without pii:\n%s", v.Memory)
		}
		vpn := false
		for _, en := range v.Entries {
			if en.At[1] > len(v.Memory) || en.At[0] > en.At[1] {
				t.Fatalf("entry %+v lies outside the memory text (%d bytes)", en, len(v.Memory))
			}
			if en.Memory != "team-handbook" || en.At[1] == en.At[0] {
				continue
			}
			if en.At[0] < i {
				t.Fatalf("mounted entry %+v points into the own memory's part", en)
			}
			if strings.Contains(v.Memory[en.At[0]:en.At[1]], "vpn-east-3.corp") && en.Reason == "expanded" {
				vpn = slices.Contains(en.Terms, "vpn")
			}
		}
		if !vpn {
			t.Fatalf("no expanded mounted entry holds the gateway with the term \"vpn\": %+v", v.Entries)
		}
	}
	// Views lock the mount as requests do: the mount's own requests, and
	// requests that mount alice from the mount, run beside them.
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				var err error
				switch g {
				case 0:
					_, err = e.Windows(me, nil)
				case 1:
					_, err = e.Prepare(Request{Key: team, Messages: []Message{msg("user", fmt.Sprintf("New VPN note %d.", i))}, Budget: 1500, PerMessage: 4, TailPercent: 30})
				default:
					var w *Window
					w, err = e.Prepare(Request{Key: team, Messages: []Message{msg("user", fmt.Sprintf("VPN gateway? %d", i))}, Budget: 1500, PerMessage: 4, TailPercent: 30, Mounts: []string{"alice"}})
					if err == nil {
						e.KeepWindow(w, WindowMeta{Budget: 1500, Tokens: w.Tokens, Status: 200})
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := e.Windows(team, nil); err != nil {
		t.Fatal(err)
	}
}

package memory

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/policy"
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

func TestMountsCompeteAndNameTheirOrigin(t *testing.T) {
	pol, err := policy.Compile([]policy.Rule{{Name: "emails", Detector: "email", AllowScopes: []string{"pii"}}})
	if err != nil {
		t.Fatal(err)
	}
	e := openWith(t, "", pol, 8)
	me := Key{Tenant: "acme", Context: "alice"}
	team := Key{Tenant: "acme", Context: "team-handbook"}
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
	_, err = e.Prepare(Request{Key: Key{Tenant: "other", Context: "bob"}, Messages: []Message{msg("user", "VPN?")}, Budget: 1500, PerMessage: 4, TailPercent: 30, Mounts: []string{"team-handbook"}})
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

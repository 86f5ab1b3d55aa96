package memory

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/tree"
)

// steppedClock is a clock tests move by hand.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *steppedClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// checkTree asserts what a valid tree is: every block's hash is of its
// content, every gist's the Merkle hash of its children, with their
// tokens and span; a message's blocks spell its text.
func checkTree(t *rapid.T, c *mctx) {
	f := c.tree.Fanout()
	for l := 0; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			n := c.tree.Node(l, i)
			if l == 0 {
				if tree.BlockHash(n) != n.Hash {
					t.Fatalf("block %d: hash does not match its content", i)
				}
				continue
			}
			kids := c.tree.Children(n)
			tokens := 0
			for _, k := range kids {
				tokens += k.Tokens
			}
			if len(kids) != f || tree.GistHash(l, kids) != n.Hash || n.Tokens != tokens || n.First != kids[0].First || n.Last != kids[f-1].Last {
				t.Fatalf("gist %d/%d does not cover its children", l, i)
			}
		}
	}
	for _, m := range c.msgs {
		if m.First < 0 {
			continue
		}
		var sb strings.Builder
		for b := m.First; b <= m.Last; b++ {
			sb.WriteString(c.tree.Block(b).Text)
		}
		if sb.String() != m.Text {
			t.Fatalf("message %d: blocks spell %q, text %q", m.Seq, sb.String(), m.Text)
		}
	}
}

// TestRetentionKeepsInvariants: over random histories, telemetry, pins and
// rules, the preview announces exactly what the prune does; after it the
// tree verifies, windows keep their budget, pinned and (for
// never_expanded) shown messages keep their text, a reopened store gives
// the same windows, the context exports and imports, and provenance
// records the prune with each message's former hash.
func TestRetentionKeepsInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		dir, err := newTempDir()
		if err != nil {
			t.Fatal(err)
		}
		defer removeDir(dir)
		clock := &steppedClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		render := rapid.SampledFrom([]string{RenderOutline, RenderChronological}).Draw(t, "render")
		rule := RetentionRule{Name: "old", OlderThanDays: rapid.IntRange(1, 60).Draw(t, "days"), NeverExpanded: rapid.Bool().Draw(t, "never")}
		opts := Options{Dir: dir, Now: clock.now, Render: render, BlockTokens: rapid.IntRange(8, 48).Draw(t, "k"), Fanout: rapid.IntRange(2, 8).Draw(t, "f"), Retention: []RetentionRule{rule}}
		e, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		k := Key{Tenant: "p", Context: "c"}
		for s := rapid.IntRange(1, 8).Draw(t, "chats"); s > 0; s-- {
			conv := conversation(rapid.IntRange(1, 12).Draw(t, "turns"), rapid.Uint64().Draw(t, "seed"))
			if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, conv, clock.now()); err != nil {
				t.Fatal(err)
			}
			clock.add(time.Duration(rapid.IntRange(1, 20).Draw(t, "gap")) * 24 * time.Hour)
		}
		for i := rapid.IntRange(0, 3).Draw(t, "asks"); i > 0; i-- {
			w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "locker combination and the cat?")}, Budget: 1500, PerMessage: 4, TailPercent: 40})
			if err == nil {
				e.KeepWindow(w, WindowMeta{Status: 200})
			}
		}
		e.SettleFocus()
		st, _ := e.Stats(k)
		var pin Pin
		if st.Blocks > 0 && rapid.Bool().Draw(t, "pin") {
			first := rapid.IntRange(0, st.Blocks-1).Draw(t, "pinFirst")
			pin, _ = e.AddPin(k, -1, first, first)
		}
		clock.add(time.Duration(rapid.IntRange(0, 90).Draw(t, "wait")) * 24 * time.Hour)
		preview, err := e.PreviewRetention(k, "old")
		if err != nil {
			t.Fatal(err)
		}
		c, _ := e.acquire(k, false)
		before := map[int64]string{}
		for _, m := range c.msgs {
			before[m.Seq] = m.Text
		}
		c.mu.Unlock()
		plan, err := e.Prune(k, "old", "test")
		if err != nil {
			t.Fatal(err)
		}
		if plan.Messages != preview.Messages || plan.Bytes != preview.Bytes || plan.Blocks != preview.Blocks || plan.Applied != (plan.Messages > 0) {
			t.Fatalf("preview %+v, prune %+v", preview, plan)
		}
		c, _ = e.acquire(k, false)
		checkTree(t, c)
		cutoff := clock.now().Add(-time.Duration(rule.OlderThanDays) * 24 * time.Hour).UnixMilli()
		pruned := 0
		for _, m := range c.msgs {
			if !m.Pruned {
				if m.Text != before[m.Seq] {
					t.Fatalf("message %d changed without being pruned", m.Seq)
				}
				continue
			}
			pruned++
			if m.Time >= cutoff || (pin.Last >= m.First && m.Last >= pin.First && pin.Created != (time.Time{})) {
				t.Fatalf("message %d (time %d, cutoff %d) pruned against the rule or a pin", m.Seq, m.Time, cutoff)
			}
			if rule.NeverExpanded {
				for b := m.First; b <= m.Last; b++ {
					if f := c.focus[nodeKey2{0, b}]; f != nil && f.Resident > 0 {
						t.Fatalf("message %d pruned, yet a window showed its block %d", m.Seq, b)
					}
				}
			}
		}
		c.mu.Unlock()
		if pruned != plan.Messages {
			t.Fatalf("%d messages pruned, plan %d", pruned, plan.Messages)
		}
		// Hysteresis is memory of the process only: leave it out of the
		// comparison with a reopened store.
		c, _ = e.acquire(k, false)
		clear(c.sticky)
		c.mu.Unlock()
		r := Request{Key: k, Messages: []Message{msg("user", "what about the garden river?")}, Budget: rapid.IntRange(200, 4000).Draw(t, "budget"), PerMessage: 4, TailPercent: 40, DryRun: true}
		w1, err1 := e.Prepare(r)
		if err1 == nil && promptTokens(e.Counter(), r, w1) > r.Budget {
			t.Fatalf("window over budget after pruning")
		}
		var buf bytes.Buffer
		if _, err := e.ExportBundle(k, &buf, ExportOptions{Operator: true}); err != nil {
			t.Fatalf("export after pruning: %v", err)
		}
		if _, err := e.ImportBundle(Key{Tenant: "p", Context: "copy"}, bytes.NewReader(buf.Bytes()), ImportOptions{}); err != nil {
			t.Fatalf("import of a pruned context: %v", err)
		}
		e.Close()
		// What memory held is what the store holds.
		e2, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer e2.Close()
		w2, err2 := e2.Prepare(r)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && w1.Memory != w2.Memory) {
			t.Fatalf("windows differ after a reopen:\n%v\n%v", w1, w2)
		}
		if plan.Applied {
			var rec ProvenanceRecord
			found := false
			e2.st.Scan(recordPrefix(kindProvenance, k), func(_, v string) bool {
				if json.Unmarshal([]byte(v), &rec) == nil && rec.Kind == provPrune {
					found = true
				}
				return true
			})
			if !found || rec.Reason != "retention rule old" || rec.Caller != "test" || len(rec.Messages) != plan.Messages {
				t.Fatalf("provenance %+v", rec)
			}
			salt, _ := hex.DecodeString(rec.Salt)
			if len(salt) != 16 || rec.Hashes[0] != saltedHash(salt, before[rec.Messages[0]]) {
				t.Fatalf("provenance hash of message %d is not of its former text", rec.Messages[0])
			}
		}
	})
}

func newTempDir() (string, error) { return os.MkdirTemp("", "retention-") }

func removeDir(dir string) { os.RemoveAll(dir) }

package memory

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/lens"
)

// stoppedClock is a clock that moves only when told: a dry run and the live
// request after it see the same time, as they do within a minute in a
// real proxy (stored times render to the minute).
type stoppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stoppedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stoppedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stateOf summarizes a context's in-memory state, for checking that a
// dry run leaves it as it found it.
func stateOf(e *Engine, k Key) string {
	c, err := e.acquire(k, false)
	if err != nil {
		return err.Error()
	}
	defer c.mu.Unlock()
	// Raw keys learned for stored messages are a cache (a plain dry run
	// learns them too); none may name a message taken back.
	dangling := 0
	for _, seq := range c.byRaw {
		if seq >= int64(len(c.msgs)) {
			dangling++
		}
	}
	// The lens's statistics: every block's score for every word of memory
	// and of the questions asked.
	var text strings.Builder
	for b := 0; b < c.tree.Len(); b++ {
		text.WriteString(c.tree.Block(b).Text + " ")
	}
	scores := c.index.Score(lens.Query(text.String()+" again edited what about the cat locker code", 1), c.index.Len()+10, 0)
	s := fmt.Sprintf("msgs %d hashes %d dangling raw keys %d marks %v rec %+v blocks %d height %d index %d scores %v", len(c.msgs), len(c.byHash), dangling, c.marks, c.rec, c.tree.Len(), c.tree.Height(), c.index.Len(), scores)
	for l := 0; l < c.tree.Height(); l++ {
		s += fmt.Sprintf(" L%d=%d", l, c.tree.LevelLen(l))
	}
	kids := 0
	for _, ks := range c.kids {
		kids += len(ks)
	}
	sup := 0
	for _, m := range c.msgs {
		if m.Superseded {
			sup++
		}
	}
	return s + fmt.Sprintf(" kids %d superseded %d", kids, sup)
}

// TestDryRunAsLiveEqualsLive: a dry run with AsLive gives exactly the
// window the live request with the same messages and budget gets next, and
// leaves memory as it found it; questions are new threads, follow-ups and
// edits of earlier chats.
func TestDryRunAsLiveEqualsLive(t *testing.T) {
	for _, render := range []string{RenderOutline, RenderChronological} {
		t.Run(render, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				clock := &stoppedClock{t: time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)}
				e, err := testOpen(t, Options{Now: clock.now, BlockTokens: rapid.IntRange(8, 48).Draw(t, "k"), Fanout: rapid.IntRange(2, 8).Draw(t, "f"), Render: render})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				k := Key{Tenant: "p", Context: "c"}
				conv := conversation(rapid.IntRange(1, 40).Draw(t, "turns"), rapid.Uint64().Draw(t, "seed"))
				if _, err := e.Import(k, conv, clock.now()); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 6; i++ {
					clock.advance(time.Duration(rapid.IntRange(1, 3000).Draw(t, "minutes")) * time.Minute)
					var msgs []Message
					switch rapid.IntRange(0, 2).Draw(t, "kind") {
					case 0: // a new chat
						msgs = []Message{msg("user", conv[rapid.IntRange(1, len(conv)-1).Draw(t, "ask")].Text[:20]+" again?")}
					case 1: // the stored chat goes on
						msgs = append(append([]Message(nil), conv...), msg("user", "and the locker code?"))
					default: // an edit of a stored turn
						cut := rapid.IntRange(1, len(conv)-1).Draw(t, "cut")
						msgs = append(append([]Message(nil), conv[:cut]...), msg("user", "edited: what about the cat?"))
					}
					// Clients send raw JSON: raw keys are learned and staged too.
					for j := range msgs {
						msgs[j].Raw, _ = json.Marshal(map[string]string{"role": msgs[j].Role, "content": msgs[j].Text})
					}
					r := Request{Key: k, Messages: msgs, Budget: rapid.IntRange(128, 5000).Draw(t, "budget"), PerMessage: 4, TailPercent: 40}
					before := stateOf(e, k)
					dr := r
					dr.DryRun, dr.AsLive = true, true
					dry, dryErr := e.Prepare(dr)
					if after := stateOf(e, k); after != before {
						t.Fatalf("the dry run changed memory:\nbefore %s\nafter  %s", before, after)
					}
					live, liveErr := e.Prepare(r)
					if (dryErr == nil) != (liveErr == nil) {
						t.Fatalf("dry run error %v, live error %v", dryErr, liveErr)
					}
					if dryErr != nil {
						continue
					}
					dry.LastSeq, dry.NextSeq = live.LastSeq, live.NextSeq
					dry.why, live.why = nil, nil
					// Scores are sums over map orders: equal up to rounding.
					for i := range min(len(dry.Entries), len(live.Entries)) {
						if d, l := dry.Entries[i].Score, live.Entries[i].Score; math.Abs(d-l) > 1e-9*max(1, math.Abs(l)) {
							t.Fatalf("entry %d: score %v in the dry run, %v live", i, d, l)
						}
						dry.Entries[i].Score, live.Entries[i].Score = 0, 0
					}
					if !reflect.DeepEqual(dry, live) {
						t.Fatalf("dry run and live differ:\ndry  %+v\nlive %+v\n--- dry memory\n%s\n--- live memory\n%s", dry, live, dry.Memory, live.Memory)
					}
				}
			})
		})
	}
}

package run

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// evalTenant is the tenant every case's MegaContext lives in.
const evalTenant = "eval"

// questionThread keeps questions from chaining onto an imported session.
const questionThread = "eval-question"

// megaContext assembles windows with the memory engine: one in-memory
// engine per case, each session imported at its time as its own thread,
// each question a dry-run Prepare.
type megaContext struct{}

func (megaContext) Name() string { return StrategyMegaContext }

func (megaContext) Load(c *dataset.Case, env *Env) (Loaded, error) {
	eo := env.Engine
	eng, err := memory.Open(memory.Options{
		Counter:      env.Counter,
		BlockTokens:  eo.BlockTokens,
		Fanout:       eo.Fanout,
		GistTokens:   eo.GistTokens,
		ShortTokens:  eo.ShortTokens,
		MinRelevance: eo.MinRelevance,
		Embedder:     eo.Embedder,
		Expander:     eo.Expander,
		Vectors:      eo.Vectors,
		Render:       eo.Render,
		OutlineShare: eo.OutlineShare,
	})
	if err != nil {
		return nil, err
	}
	m := &mcLoaded{env: env, eng: eng, ctx: contextID(c.ID), tail: eo.TailPercent}
	if m.tail <= 0 {
		m.tail = 40
	}
	for _, s := range c.Sessions {
		msgs := make([]memory.Message, len(s.Messages))
		for i, dm := range s.Messages {
			msgs[i] = memory.Message{Role: dm.Role, Text: dm.Content}
		}
		k := memory.Key{Tenant: evalTenant, Context: m.ctx, Thread: s.ID}
		if _, err := eng.Import(k, msgs, s.Time); err != nil {
			eng.Close()
			return nil, fmt.Errorf("import session %s: %w", s.ID, err)
		}
	}
	if eo.Embedder != nil {
		// Requests never wait for embeddings; the evaluation measures the
		// steady state, when the background worker has caught up.
		if err := eng.WaitEmbedded(context.Background(), memory.Key{Tenant: evalTenant, Context: m.ctx}); err != nil {
			eng.Close()
			return nil, fmt.Errorf("embed history: %w", err)
		}
	}
	return m, nil
}

// contextID makes a valid MegaContext id of a case id.
func contextID(id string) string {
	b := []byte(id)
	for i, c := range b {
		if c < 0x20 {
			b[i] = '_'
		}
	}
	if len(b) > 256 {
		b = b[:256]
	}
	if len(b) == 0 {
		return "case"
	}
	return string(b)
}

type mcLoaded struct {
	env  *Env
	eng  *memory.Engine
	ctx  string
	tail int
}

func (m *mcLoaded) Assemble(question string, budget int) (Window, error) {
	q := memory.Message{Role: dataset.RoleUser, Text: question}
	w, err := m.eng.Prepare(memory.Request{
		Key:         memory.Key{Tenant: evalTenant, Context: m.ctx, Thread: questionThread},
		Messages:    []memory.Message{q},
		Budget:      budget,
		PerMessage:  m.env.PerMessage,
		TailPercent: m.tail,
		DryRun:      true,
		// Consecutive questions behave like turns of one conversation: the
		// focus of one window carries over to the next (hysteresis).
		KeepFocus: true,
	})
	if err != nil {
		return Window{}, err
	}
	var out Window
	if w.Memory != "" {
		// The proxy sends memory as a system message of its own when the
		// client has no system prompt.
		out.Messages = append(out.Messages, Message{Role: dataset.RoleSystem, Content: w.Memory})
	}
	out.Messages = append(out.Messages, Message{Role: dataset.RoleUser, Content: question})
	out.Notes = entryNotes(w)
	return out, nil
}

func (m *mcLoaded) Close() error { return m.eng.Close() }

// entryNotes lists a window's memory entries, one a line: what each
// spends and why it is there, so that a dump shows where the budget went.
func entryNotes(w *memory.Window) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "window %d tokens (memory %d), %d expansions, %d blocks omitted\n", w.Tokens, w.MemoryTokens, w.Expanded, w.Omitted)
	spent := map[string]int{}
	for _, e := range w.Entries {
		spent[e.Reason] += e.Tokens
	}
	for _, r := range slices.Sorted(maps.Keys(spent)) {
		fmt.Fprintf(&sb, "  %s: %d tokens\n", r, spent[r])
	}
	for _, e := range w.Entries {
		fmt.Fprintf(&sb, "L%d #%d blocks %d-%d %s %s", e.Level, e.Index, e.First, e.Last, e.Detail, e.Reason)
		if e.Round > 0 {
			fmt.Fprintf(&sb, " round %d", e.Round)
		}
		fmt.Fprintf(&sb, " %d tokens score %.3g\n", e.Tokens, e.Score)
	}
	return sb.String()
}

package run

import (
	"fmt"
	"strings"
	"time"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/glove"

	"github.com/megacontext/megacontext/tokens"
	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// Strategy names.
const (
	// StrategyMegaContext assembles windows with the memory engine.
	StrategyMegaContext = "megacontext"
	// StrategyRAG is BM25 over ~128-token chunks for half the budget plus
	// the newest messages that fit the rest.
	StrategyRAG = "rag"
	// StrategyTruncate is the newest messages that fit.
	StrategyTruncate = "truncate"
)

// Strategies returns the known strategy names in a fixed order.
func Strategies() []string {
	return []string{StrategyMegaContext, StrategyRAG, StrategyTruncate}
}

// Message is one chat message of an assembled window.
type Message struct {
	Role    string
	Content string
}

// Window is the prompt a strategy assembled for a question: chat messages
// in order, the question last.
type Window struct {
	Messages []Message
	// Notes, when the strategy has them, say how the window was made (the
	// engine's entries: reason, round, tokens); --dump writes them after
	// the window.
	Notes string
}

// Context returns the text of every message but the last (the question),
// joined by blank lines: what recall is checked against.
func (w Window) Context() string {
	if len(w.Messages) <= 1 {
		return ""
	}
	parts := make([]string, 0, len(w.Messages)-1)
	for _, m := range w.Messages[:len(w.Messages)-1] {
		parts = append(parts, m.Content)
	}
	return strings.Join(parts, "\n\n")
}

// Text renders the whole window as one string, in prompt order: what
// prefix stability compares between consecutive questions.
func (w Window) Text() string {
	var sb strings.Builder
	for _, m := range w.Messages {
		sb.WriteString(m.Role)
		sb.WriteString(": ")
		sb.WriteString(m.Content)
		sb.WriteString("\n\n")
	}
	return sb.String()
}

// Tokens counts the window as every strategy's budget does: each message's
// content plus perMessage tokens of chat-template overhead.
func (w Window) Tokens(c tokens.Counter, perMessage int) int {
	n := 0
	for _, m := range w.Messages {
		n += c.Count(m.Content) + perMessage
	}
	return n
}

// Env is what strategies share: the token counter and the budget rules.
type Env struct {
	// Counter counts every window's tokens.
	Counter tokens.Counter
	// PerMessage is the chat template's cost per message.
	PerMessage int
	// Engine tunes the megacontext strategy.
	Engine EngineOptions
	// ChunkTokens is the rag strategy's chunk size.
	ChunkTokens int
}

// EngineOptions tune the megacontext strategy; zero values take the
// engine's (and the proxy's) defaults.
type EngineOptions struct {
	BlockTokens int
	Fanout      int
	GistTokens  int
	ShortTokens int
	// MinRelevance is the engine's expansion threshold (0: engine default).
	MinRelevance float64
	// Embedder turns on the engine's semantic lens.
	Embedder memory.Embedder
	// Expander adds thesaurus terms to the engine's lens queries.
	Expander memory.Expander
	// Vectors are GloVe word vectors for the engine's soft term matching;
	// rag gets the same expansion.
	Vectors *glove.Vectors
	// TailPercent caps the verbatim tail (default 40, as the proxy).
	TailPercent int
	// Render is the engine's memory layout (memory.RenderChronological,
	// the default, or memory.RenderOutline).
	Render string
	// OutlineShare is the outline's share of the memory budget in
	// RenderOutline mode (0: engine default).
	OutlineShare float64
}

// WithAssets returns o with the optional assets of a (Embedder, Expander,
// Vectors) in place of its own, its tuning kept: how a caller applies one
// asset configuration to any tuning.
func (o EngineOptions) WithAssets(a EngineOptions) EngineOptions {
	o.Embedder, o.Expander, o.Vectors = a.Embedder, a.Expander, a.Vectors
	return o
}

// Strategy assembles windows over one case's history.
type Strategy interface {
	// Name identifies the strategy in reports.
	Name() string
	// Load ingests a case's whole history.
	Load(c *dataset.Case, env *Env) (Loaded, error)
}

// Loaded is a strategy holding one case's history.
type Loaded interface {
	// Assemble returns the window for a request whose last user message
	// is question, within budget tokens. It must not change the history.
	Assemble(question string, budget int) (Window, error)
	// Close releases the history.
	Close() error
}

// NewStrategy returns the strategy called name.
func NewStrategy(name string) (Strategy, error) {
	switch name {
	case StrategyMegaContext:
		return megaContext{}, nil
	case StrategyRAG:
		return rag{}, nil
	case StrategyTruncate:
		return truncate{}, nil
	}
	return nil, fmt.Errorf("eval: unknown strategy %q (want %s)", name, strings.Join(Strategies(), ", "))
}

// histMsg is one message of a case's history in timeline order.
type histMsg struct {
	role string
	text string
	time time.Time
	cost int // content tokens + per-message overhead
}

// flatten lists a case's messages in timeline order with their costs as
// whole chat messages.
func flatten(c *dataset.Case, env *Env) []histMsg {
	var out []histMsg
	for _, s := range c.Sessions {
		for _, m := range s.Messages {
			out = append(out, histMsg{role: m.Role, text: m.Content, time: s.Time, cost: env.Counter.Count(m.Content) + env.PerMessage})
		}
	}
	return out
}

// newestThatFit returns the index of the oldest message of the longest
// suffix of msgs[:end] whose costs sum to at most room, and that sum.
func newestThatFit(msgs []histMsg, end, room int) (from, used int) {
	from = end
	for i := end - 1; i >= 0; i-- {
		if used+msgs[i].cost > room {
			break
		}
		used += msgs[i].cost
		from = i
	}
	return from, used
}

// chatMessages turns msgs into window messages.
func chatMessages(msgs []histMsg) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{Role: m.role, Content: m.text}
	}
	return out
}

// truncate is the newest messages that fit: what chat clients do.
type truncate struct{}

func (truncate) Name() string { return StrategyTruncate }

func (truncate) Load(c *dataset.Case, env *Env) (Loaded, error) {
	return &truncLoaded{env: env, msgs: flatten(c, env)}, nil
}

type truncLoaded struct {
	env  *Env
	msgs []histMsg
}

func (t *truncLoaded) Assemble(question string, budget int) (Window, error) {
	q := t.env.Counter.Count(question) + t.env.PerMessage
	if q > budget {
		return Window{}, fmt.Errorf("question of %d tokens exceeds the budget %d", q, budget)
	}
	from, _ := newestThatFit(t.msgs, len(t.msgs), budget-q)
	w := Window{Messages: chatMessages(t.msgs[from:])}
	w.Messages = append(w.Messages, Message{Role: dataset.RoleUser, Content: question})
	return w, nil
}

func (t *truncLoaded) Close() error { return nil }

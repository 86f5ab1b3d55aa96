package run

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// DefaultChunkTokens is the rag strategy's chunk size.
const DefaultChunkTokens = 128

// ragMaxDF skips query terms found in more than this share of the chunks,
// as the engine's lens does.
const ragMaxDF = 0.2

// ragPreamble and ragClosing frame the retrieved excerpts.
const (
	ragPreamble = "<memory>\nExcerpts of earlier conversations that match the request, oldest first, times in UTC.\n"
	ragClosing  = "</memory>"
)

const ragTimeLayout = "2006-01-02 15:04"

// rag is the retrieval baseline of what memory layers do: the history cut
// into chunks of about ChunkTokens tokens that never cross a message (and
// end at sentence ends where they can), BM25 over them with the lens'
// tokenizer (same stopwords and stemming; each chunk indexed with its
// timestamp header, so dates in a question can match), the best chunks
// for half the budget rendered in chronological order in one memory
// message, then the newest messages that fit the rest verbatim. Chunks of
// messages already in that verbatim tail are not retrieved twice, and
// budget the tail leaves unused goes to retrieval.
type rag struct{}

func (rag) Name() string { return StrategyRAG }

// ragChunk is one retrievable chunk.
type ragChunk struct {
	msg  int    // index of its message in the timeline
	part int    // index within its message
	text string // verbatim piece of the message
	head string // "[time] role: " header
	cost int    // tokens of its rendering, header included, plus a line break
}

type ragLoaded struct {
	env    *Env
	msgs   []histMsg
	chunks []ragChunk
	index  *lens.Index
	fixed  int // tokens of the preamble and closing, the message overhead and slack
}

func (rag) Load(c *dataset.Case, env *Env) (Loaded, error) {
	size := env.ChunkTokens
	if size <= 0 {
		size = DefaultChunkTokens
	}
	r := &ragLoaded{env: env, msgs: flatten(c, env), index: lens.NewIndex()}
	r.index.UseVectors(env.Engine.Vectors)
	for i, m := range r.msgs {
		head := "[" + m.time.UTC().Format(ragTimeLayout) + "] " + m.role + ": "
		for j, piece := range chunkText(m.text, size, env.Counter.Count) {
			ch := ragChunk{msg: i, part: j, text: piece, head: head}
			ch.cost = env.Counter.Count(head+"…"+strings.TrimLeft(piece, " \n")) + 1
			r.chunks = append(r.chunks, ch)
			r.index.Add(head + piece)
		}
	}
	r.fixed = env.Counter.Count(ragPreamble) + env.Counter.Count(ragClosing) + env.PerMessage + 2
	return r, nil
}

func (r *ragLoaded) Close() error { return nil }

func (r *ragLoaded) Assemble(question string, budget int) (Window, error) {
	q := r.env.Counter.Count(question) + r.env.PerMessage
	if q > budget {
		return Window{}, fmt.Errorf("question of %d tokens exceeds the budget %d", q, budget)
	}
	// The newest messages for the half of the budget retrieval leaves.
	tailFrom, tailUsed := newestThatFit(r.msgs, len(r.msgs), budget-budget/2-q)
	room := budget - q - tailUsed
	mem, memCost := r.retrieve(question, tailFrom, room)
	// Whatever retrieval left goes to older messages of the tail.
	if room-memCost > 0 {
		tailFrom, _ = newestThatFit(r.msgs, tailFrom, room-memCost)
	}
	var w Window
	if mem != "" {
		w.Messages = append(w.Messages, Message{Role: dataset.RoleSystem, Content: mem})
	}
	w.Messages = append(w.Messages, chatMessages(r.msgs[tailFrom:])...)
	w.Messages = append(w.Messages, Message{Role: dataset.RoleUser, Content: question})
	return w, nil
}

// retrieve picks the best chunks of messages before tailFrom within room
// tokens and renders them; it returns the text and its exact cost.
func (r *ragLoaded) retrieve(question string, tailFrom, room int) (string, int) {
	avail := room - r.fixed
	if avail <= 0 {
		return "", 0
	}
	limit := len(r.chunks)
	for limit > 0 && r.chunks[limit-1].msg >= tailFrom {
		limit--
	}
	q := lens.Query(question, 1)
	if x := r.env.Engine.Expander; x != nil {
		// The same thesaurus, weighted as the engine weights it, so that
		// the comparison measures retrieval structure, not vocabulary.
		extra := x.Expand(question)
		for _, t := range q {
			if r.index.DF(t.Text) == 0 {
				for i := range extra {
					extra[i].Weight = min(1, 2*extra[i].Weight)
				}
				break
			}
		}
		q = lens.Merge(q, extra)
		if hx, ok := x.(memory.HistoryExpander); ok {
			described := hx.ExpandIn(question, func(t string) bool { return r.index.DF(t) > 0 })
			q = lens.Merge(q, described)
			if memory.AsksWho(question) {
				near := r.index.Semantic().Near(described, memory.SoftOptions(), nil)
				for i := range near {
					near[i].Weight *= memory.NearWeight
				}
				q = lens.Merge(q, near)
			}
		}
	}
	// The same soft term matching (GloVe) as the engine's.
	q = lens.Merge(q, r.index.Semantic().SoftTerms(question, memory.SoftOptions()))
	if memory.AsksAboutYou(question) {
		// The same definitions and frame words as the engine's for what
		// the assistant suggested.
		if d, ok := r.env.Engine.Expander.(memory.Definer); ok {
			q = lens.Merge(q, d.Define(question, func(t string) bool { return r.index.DF(t) > 0 }, func(w string, ts []lens.Term) []lens.Term {
				return r.index.Semantic().Rank(w, ts, memory.DefineFloor, memory.DefineFull)
			}))
		}
		q = memory.SuggestionFrame(q)
	}
	scores := r.index.Score(q, limit, ragMaxDF)
	ids := make([]int, 0, len(scores))
	for id, s := range scores {
		if s > 0 {
			ids = append(ids, id)
		}
	}
	// Best first; on ties the newer chunk (an update beats what it replaced).
	slices.SortFunc(ids, func(a, b int) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return cmp.Compare(b, a)
	})
	var picked []int
	used := 0
	for _, id := range ids {
		if c := r.chunks[id].cost; used+c <= avail {
			picked = append(picked, id)
			used += c
		}
	}
	// The sum of chunk costs bounds the rendering in practice; check the
	// exact count and drop the weakest chunks until it fits.
	for len(picked) > 0 {
		text := r.render(picked)
		cost := r.env.Counter.Count(text) + r.env.PerMessage
		if cost <= room {
			return text, cost
		}
		picked = picked[:len(picked)-1]
	}
	return "", 0
}

// render writes the chunks in timeline order, joining consecutive chunks
// of one message.
func (r *ragLoaded) render(ids []int) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	var sb strings.Builder
	sb.WriteString(ragPreamble)
	prev := -2
	for _, id := range ids {
		ch := r.chunks[id]
		if prev >= 0 && id == prev+1 && r.chunks[prev].msg == ch.msg {
			sb.WriteString(ch.text)
		} else {
			if prev >= 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(ch.head)
			if ch.part > 0 {
				sb.WriteString("…")
			}
			sb.WriteString(strings.TrimLeft(ch.text, " \n"))
		}
		prev = id
	}
	sb.WriteByte('\n')
	sb.WriteString(ragClosing)
	return sb.String()
}

// chunkText cuts text into consecutive pieces of about size tokens or
// less that concatenate back to text: whole sentences packed greedily,
// a sentence longer than size cut between words, a word longer than size
// on its own.
func chunkText(text string, size int, count func(string) int) []string {
	if text == "" {
		return nil
	}
	if count(text) <= size {
		return []string{text}
	}
	var out []string
	start, used := 0, 0
	pos := 0
	flush := func() {
		if pos > start {
			out = append(out, text[start:pos])
		}
		start, used = pos, 0
	}
	for _, u := range splitUnits(text, sentenceBreak) {
		n := count(u)
		if n > size {
			// A long sentence: pack its words.
			for _, wd := range splitUnits(u, wordBreak) {
				wn := count(wd)
				if used+wn > size && used > 0 {
					flush()
				}
				pos += len(wd)
				used += wn
			}
			continue
		}
		if used+n > size && used > 0 {
			flush()
		}
		pos += len(u)
		used += n
	}
	flush()
	return out
}

// splitUnits cuts s before every position where brk reports a break; the
// pieces concatenate back to s, whitespace leading each piece as BPE
// pre-tokenizers attach it.
func splitUnits(s string, brk func(s string, i int) bool) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if brk(s, i) && i > start {
			out = append(out, s[start:i])
			start = i
		}
	}
	return append(out, s[start:])
}

// sentenceBreak: whitespace after a sentence end, or a line break.
func sentenceBreak(s string, i int) bool {
	if !isSpace(s[i]) {
		return false
	}
	return s[i] == '\n' || strings.IndexByte(".?!:;", s[i-1]) >= 0
}

// wordBreak: whitespace after a non-space.
func wordBreak(s string, i int) bool { return isSpace(s[i]) && !isSpace(s[i-1]) }

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

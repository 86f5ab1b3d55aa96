// Package gist builds extractive gists: short texts that summarize a span of
// the timeline by its most salient sentences, entities and codes, with no
// model involved. Each gist comes in two lengths: a full gist capped at a
// token budget and a short headline of key terms.
package gist

import (
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/tree"
	"github.com/megacontext/megacontext/tokens"
)

// Separator joins the pieces of a gist; gists of gists split on it.
const Separator = " | "

// ShortSeparator joins the key terms of a short gist.
const ShortSeparator = ", "

// Extractive summarizes spans by selecting sentences. It is safe for
// concurrent use.
type Extractive struct {
	// Counter measures the final cost of each gist (it may be a remote,
	// exact tokenizer: it is called twice per gist).
	Counter tokens.Counter
	// Sizer measures candidate pieces while selecting (called many times);
	// nil uses the conservative tokens.Estimate.
	Sizer tokens.Counter
	// MaxTokens caps a full gist.
	MaxTokens int
	// ShortTokens caps a short gist.
	ShortTokens int
	// Rarity, when set, says how much a lower-case word tells apart the
	// span it occurs in (an inverse document frequency over the history):
	// a headline names what is rare, not the boilerplate that recurs
	// everywhere ("Noted", "Let me know"). nil: every word alike.
	Rarity func(word string) float64
	// IsName, when set, reports a word the history only ever capitalizes
	// (a name), which a headline keeps as a name even where it opens a
	// sentence. nil: only capitals inside a sentence make a name.
	IsName func(word string) bool
}

type sentence struct {
	text  string
	role  string
	order int
	score float64
	cost  int
}

// Summarize implements tree.Summarizer.
func (e Extractive) Summarize(level int, children []*tree.Node) tree.Gist {
	var cands []sentence
	var src []piece
	if level == 1 {
		cands = blockSentences(children)
		// Blocks of one message are one text; messages are separate
		// pieces, so that no word is glued across them ("apples.Tim").
		for i, c := range children {
			if i > 0 && c.Msg == children[i-1].Msg {
				src[len(src)-1].text += c.Text
				continue
			}
			src = append(src, piece{role: c.Role, text: c.Text})
		}
	} else {
		cands = gistPieces(children)
		// A child's headline holds terms already chosen (role ""); its
		// gist, pieces each after the role that wrote them.
		for _, c := range children {
			src = append(src, piece{text: c.Short})
			for _, p := range strings.Split(c.Text, Separator) {
				p = strings.TrimSpace(p)
				role := ""
				if r, rest, ok := strings.Cut(p, ": "); ok && roleWords[r] {
					role, p = r, rest
				}
				src = append(src, piece{role: role, text: p})
			}
		}
	}
	var g tree.Gist
	g.Text = e.pick(cands)
	g.Short = e.short(src)
	g.Cost, g.ShortCost = e.Counter.Count(g.Text), e.Counter.Count(g.Short)
	return g
}

func (e Extractive) sizer() tokens.Counter {
	if e.Sizer != nil {
		return e.Sizer
	}
	return tokens.Estimate{}
}

// blockSentences joins consecutive blocks of one message and splits the
// result into sentences, each tagged with its role.
func blockSentences(blocks []*tree.Node) []sentence {
	var out []sentence
	var cur strings.Builder
	role, msg := "", int64(-1)
	flush := func() {
		if cur.Len() == 0 {
			return
		}
		first := true
		for _, s := range SplitSentences(cur.String()) {
			sc := salience(s, role)
			if first {
				sc += 1
				first = false
			}
			if role == "user" {
				sc += 0.5
			}
			out = append(out, sentence{text: s, role: role, order: len(out), score: sc})
		}
		cur.Reset()
	}
	for _, b := range blocks {
		if b.Msg != msg {
			flush()
			role, msg = b.Role, b.Msg
		}
		cur.WriteString(b.Text)
	}
	flush()
	return out
}

// gistPieces splits children's gists back into their pieces.
func gistPieces(children []*tree.Node) []sentence {
	var out []sentence
	for _, c := range children {
		for i, p := range strings.Split(c.Text, Separator) {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			role := ""
			if r, rest, ok := strings.Cut(p, ": "); ok && (r == "user" || r == "assistant" || r == "tool") {
				role, p = r, rest
			}
			sc := salience(p, role)
			if i == 0 {
				sc += 0.5 // the lead piece of each child keeps the outline balanced
			}
			out = append(out, sentence{text: p, role: role, order: len(out), score: sc})
		}
	}
	return out
}

// pick selects the best sentences within MaxTokens (by the sizer), in
// original order.
func (e Extractive) pick(cands []sentence) string {
	if len(cands) == 0 {
		return ""
	}
	sz := e.sizer()
	maxPiece := e.MaxTokens / 2
	if maxPiece < 8 {
		maxPiece = e.MaxTokens
	}
	for i := range cands {
		cands[i].text = truncate(sz, cands[i].text, maxPiece)
		cands[i].cost = sz.Count(labelled(cands[i])) + 2
	}
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return cands[order[a]].score > cands[order[b]].score })
	chosen := make([]bool, len(cands))
	used := 0
	for _, i := range order {
		if used+cands[i].cost > e.MaxTokens {
			continue
		}
		chosen[i] = true
		used += cands[i].cost
	}
	var parts []string
	for i, c := range cands {
		if chosen[i] {
			parts = append(parts, labelled(c))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, labelled(sentence{text: truncate(sz, cands[0].text, e.MaxTokens-4), role: cands[0].role}))
	}
	return strings.Join(parts, Separator)
}

func labelled(s sentence) string {
	if s.role == "" {
		return s.text
	}
	return s.role + ": " + s.text
}

// piece is text a headline takes its terms from, and the role that wrote
// it ("" for terms a lower headline already chose).
type piece struct{ role, text string }

// short returns a headline of the span's key terms (entities, codes and
// rare words), within ShortTokens by the sizer. A capitalized word that
// only ever opens a sentence is an ordinary word ("Noted", "Let"); with
// Rarity, each word counts by how rare it is in the history. Machine-made
// identifiers are no key terms (keyTerm): a headline names what the span
// is about, not the ids of its tool calls.
func (e Extractive) short(pieces []piece) string {
	sz := e.sizer()
	type term struct {
		w     string
		score float64
		first int
		// name: capitalized somewhere other than a sentence start;
		// opener: capitalized at a sentence start.
		name, opener bool
	}
	seen := map[string]*term{}
	var terms []*term
	i := 0
	userWrote := userWords(pieces)
	for _, p := range pieces {
		for _, sent := range SplitSentences(stripFraming(p.text)) {
			for k, w := range splitWords(sent) {
				i++
				lw := strings.ToLower(w)
				if len(w) < 3 || isStopword(lw) || roleWords[lw] || !keyTerm(w, p.role, userWrote) {
					continue
				}
				t, ok := seen[lw]
				if !ok {
					t = &term{w: w, first: i}
					seen[lw] = t
					terms = append(terms, t)
				}
				ws := wordSalience(w)
				switch {
				case ws == 2 && e.IsName != nil && e.IsName(lw):
					t.name = true
				case k == 0 && ws == 2:
					ws = wordSalience(lw) // a capital at a sentence start says nothing
					t.opener = true
				case ws == 2:
					t.name = true
				}
				if e.Rarity != nil {
					ws *= e.Rarity(lw)
				}
				t.score += ws
			}
		}
	}
	for _, t := range terms {
		if t.opener && !t.name {
			t.w = strings.ToLower(t.w) // an ordinary word, however it was first written
		}
	}
	sort.SliceStable(terms, func(a, b int) bool { return terms[a].score > terms[b].score })
	var out []string
	used := 0
	for i, t := range terms {
		c := sz.Count(t.w) + 1
		if used+c > e.ShortTokens && i > 0 {
			continue // the top term (a code or an entity, usually) always stays
		}
		out = append(out, t.w)
		used += c
	}
	// Keep the headline in order of first appearance for readability.
	sort.SliceStable(out, func(a, b int) bool { return seen[strings.ToLower(out[a])].first < seen[strings.ToLower(out[b])].first })
	return strings.Join(out, ShortSeparator)
}

// wordSalience rates a single word: codes and numbers highest, then
// capitalized words (entities), then long words.
func wordSalience(w string) float64 {
	hasDigit, hasUpper, hasLower := false, false, false
	for _, r := range w {
		switch {
		case unicode.IsDigit(r):
			hasDigit = true
		case unicode.IsUpper(r):
			hasUpper = true
		case unicode.IsLower(r):
			hasLower = true
		}
	}
	switch {
	case hasDigit && (hasUpper || hasLower):
		return 4
	case hasDigit:
		return 2.5
	case hasUpper && !hasLower && len(w) > 1:
		return 3
	case hasUpper:
		return 2
	case len(w) >= 8:
		return 1.2
	default:
		return 0.6
	}
}

// salience rates a sentence by the entities, codes and numbers it holds
// (those a role other than the user's wrote, not machine-made identifiers:
// the ids of tool calls do not make their lines the span's gist).
func salience(s, role string) float64 {
	sc := 0.0
	words := strings.Fields(stripFraming(s))
	for i, w := range words {
		w = strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if w == "" || (role != "user" && opaque(w)) {
			continue
		}
		ws := wordSalience(w)
		if i == 0 && ws == 2 {
			ws = 0.6 // a capital at sentence start says nothing
		}
		if ws >= 2 {
			sc += ws
		}
	}
	n := len(words)
	switch {
	case n < 4:
		sc *= 0.5
	case n > 40:
		sc *= 0.7
	}
	return sc
}

// truncate cuts s to at most max tokens at a word boundary, adding "…".
func truncate(c tokens.Counter, s string, max int) string {
	if c.Count(s) <= max {
		return s
	}
	words := strings.Fields(s)
	lo, hi := 0, len(words)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if c.Count(strings.Join(words[:mid], " ")+" …") <= max {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		// One giant word: cut by runes.
		r := []rune(s)
		n := len(r)
		for n > 0 && c.Count(string(r[:n])+"…") > max {
			n = n * 3 / 4
		}
		return string(r[:n]) + "…"
	}
	return strings.Join(words[:lo], " ") + " …"
}

// SplitSentences splits text into trimmed sentences at . ! ? and line breaks.
func SplitSentences(text string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		s := strings.TrimSpace(text[start:end])
		if s != "" {
			out = append(out, strings.Join(strings.Fields(s), " "))
		}
		start = end
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		switch r {
		case '\n':
			emit(i)
		case '.', '!', '?':
			// End of sentence when followed by space/end, and not a decimal or abbreviation-like "e.g".
			if i >= len(text) || text[i] == ' ' || text[i] == '\n' {
				emit(i)
			}
		}
	}
	if start < len(text) {
		emit(len(text))
	}
	return out
}

// stopwords carry no content: closed-class words, and a few frequent verbs
// and adverbs. "back" is not one: it is the body's back too ("my sore
// back", "who cracks my back?").
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during
each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no
nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's these they they'd they'll
they're they've this those through to too under until up very was wasn't we we'd we'll we're we've were weren't what
what's when when's where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're
you've your yours yourself yourselves also just like get got yes okay ok sure thanks thank please will shall may might
must one two use used using make made new now well way even much many`) {
		m[w] = true
	}
	return m
}()

// roleWords label gist pieces; they are not key terms.
var roleWords = map[string]bool{"user": true, "assistant": true, "tool": true, "system": true}

func isStopword(w string) bool { return stopwords[w] }

// IsStopword reports whether the lower-case word w carries no content.
func IsStopword(w string) bool { return stopwords[w] }

// splitWords splits a sentence into the words a headline may take: runs
// of letters, digits and the joiners of codes (- _ . '), trimmed of
// joiners at their ends.
func splitWords(sent string) []string {
	ws := strings.FieldsFunc(sent, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.' || r == '\'')
	})
	for i, w := range ws {
		ws[i] = strings.Trim(w, "-_.'")
	}
	return ws
}

// toolFraming matches the markers the proxy writes around flattened tool
// calls and results ("[tool call ID] name(args)", "[tool result ID] …",
// "[function call] name(args)"): framing, not content.
var toolFraming = regexp.MustCompile(`\[(?:tool call|tool result)[^\]\n]*\]|\[function call\]`)

// stripFraming removes the tool-call markers, ids included, from text.
func stripFraming(text string) string {
	if !strings.Contains(text, "[tool ") && !strings.Contains(text, "[function call]") {
		return text
	}
	return toolFraming.ReplaceAllString(text, " ")
}

// userWords are the lower-case words the user wrote in pieces: a code
// the user typed is content wherever it recurs in the span.
func userWords(pieces []piece) map[string]bool {
	out := map[string]bool{}
	for _, p := range pieces {
		if p.role != "user" {
			continue
		}
		for _, w := range splitWords(p.text) {
			if opaque(w) {
				out[strings.ToLower(w)] = true
			}
		}
	}
	return out
}

// keyTerm reports whether word w, written by role, may name a span: any
// word but a machine-made identifier (opaque), which only the user's own
// words make content ("" is a term a lower headline already kept).
func keyTerm(w, role string, userWrote map[string]bool) bool {
	return role == "user" || role == "" || !opaque(w) || userWrote[strings.ToLower(w)]
}

// opaque reports a machine-made identifier rather than a word or a code a
// person would say: a tool call's "call_8fJ2kQz9Xw1LmNp", a completion's
// "chatcmpl-9xYzA1b2C3d4", a UUID, a hash. Such a token has a part (between
// - _ .) of at least 8 characters where letters and digits alternate at
// least three times, or is a UUID-like run of hexadecimal parts (20 digits
// or more, some of them letters). A person's codes and names have short
// parts or few alternations ("ZX-4471-QK", "BA0287", "Float64Slice",
// "x509Certificate", "ListenAndServe"); an id the user wrote himself
// ("1Z999AA10123456784") is content all the same (keyTerm).
func opaque(w string) bool {
	parts := strings.FieldsFunc(w, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	hexParts, hexLen, hexLetters := 0, 0, false
	for _, part := range parts {
		letters, digits, flips := 0, 0, 0
		prevDigit := false
		for i, r := range part {
			d := unicode.IsDigit(r)
			switch {
			case d:
				digits++
			case unicode.IsLetter(r):
				letters++
			}
			if i > 0 && d != prevDigit {
				flips++
			}
			prevDigit = d
		}
		if len(part) >= 8 && letters > 0 && digits > 0 && flips >= 3 {
			return true
		}
		if isHex(part) {
			hexParts++
			hexLen += len(part)
			hexLetters = hexLetters || letters > 0
		}
	}
	return hexParts >= 3 && hexParts == len(parts) && hexLen >= 20 && hexLetters
}

// isHex reports a string of hexadecimal digits only.
func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return s != ""
}

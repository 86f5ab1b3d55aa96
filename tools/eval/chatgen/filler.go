package chatgen

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// asides lead a planted statement into a user message.
var asides = []string{"", "", "", "Oh and:", "Also:", "btw:", "Unrelated:", "Before I forget:", "Side note:", "PS:"}

// filler writes the conversations of one case around the planted
// statements: a session opens with small talk, then the user asks for a
// bedtime story, help with the novel their book club reads, or a passage for
// a card or speech, and the assistant answers with the books' paragraphs. A
// paragraph is not used twice in a case until its book is nearly used up.
type filler struct {
	rng    *rand.Rand
	prose  *Prose
	talk   *talker
	used   [][]bool // per book, per paragraph: already in this case
	nUsed  []int    // per book: how many are used
	kinds  map[string][]int
	themed map[string][][2]int // quote theme -> (book, paragraph) holding it
}

// newFiller starts the filler of a case.
func newFiller(rng *rand.Rand, prose *Prose, talk *talker) *filler {
	f := &filler{rng: rng, prose: prose, talk: talk, kinds: map[string][]int{}, themed: map[string][][2]int{}}
	for i, b := range prose.Books {
		f.used = append(f.used, make([]bool, len(b.Paragraphs)))
		f.nUsed = append(f.nUsed, 0)
		f.kinds[b.Kind] = append(f.kinds[b.Kind], i)
	}
	return f
}

// take marks a paragraph used and returns it.
func (f *filler) take(book, i int) string {
	if !f.used[book][i] {
		f.used[book][i] = true
		f.nUsed[book]++
	}
	return f.prose.Books[book].Paragraphs[i]
}

// start returns an unused paragraph index of a book to read from,
// forgetting the book's use once nine tenths of it are used.
func (f *filler) start(book int) int {
	n := len(f.used[book])
	if f.nUsed[book]*10 >= n*9 {
		clear(f.used[book])
		f.nUsed[book] = 0
	}
	for {
		if i := f.rng.IntN(n); !f.used[book][i] {
			return i
		}
	}
}

// read returns up to k unused paragraphs of a book from i on, and where
// reading stopped.
func (f *filler) read(book, i, k int) ([]string, int) {
	var out []string
	n := len(f.used[book])
	for ; len(out) < k && i < n; i++ {
		if !f.used[book][i] {
			out = append(out, f.take(book, i))
		}
	}
	if len(out) == 0 {
		j := f.start(book)
		return f.read(book, j, k)
	}
	return out, i
}

// quote returns an unused paragraph holding a theme word, and its book.
func (f *filler) quote(theme string) (string, int) {
	refs, ok := f.themed[theme]
	if !ok {
		for bi, b := range f.prose.Books {
			for pi, p := range b.Paragraphs {
				if len(p) < 600 && strings.Contains(strings.ToLower(p), " "+theme) {
					refs = append(refs, [2]int{bi, pi})
				}
			}
		}
		f.themed[theme] = refs
	}
	for range 20 {
		r := refs[f.rng.IntN(len(refs))]
		if !f.used[r[0]][r[1]] {
			return f.take(r[0], r[1]), r[0]
		}
	}
	r := refs[f.rng.IntN(len(refs))]
	return f.take(r[0], r[1]), r[0]
}

// exchange is one user message and the assistant's answer.
type exchange struct{ user, assistant string }

// session writes a session of about budget bytes holding the planted
// statements: each user statement inside a user message, each assistant
// statement opening the answer to its request.
func (f *filler) session(budget int, plants []*plant) []dataset.Message {
	rng := f.rng
	var userPlants, asked []*plant
	for _, i := range rng.Perm(len(plants)) {
		if p := plants[i]; p.role == dataset.RoleAssistant {
			asked = append(asked, p)
		} else {
			userPlants = append(userPlants, p)
		}
	}
	var turns []exchange
	size := 0
	add := func(e exchange) {
		turns = append(turns, e)
		size += len(e.user) + len(e.assistant)
	}

	for _, p := range userPlants {
		size += len(p.text) + 8
	}
	// Small talk first, then requests for prose until the budget is spent.
	for range 1 + rng.IntN(2) {
		add(exchange{join(f.talk.opening(), f.talk.chatter()), f.talk.reply()})
	}
	for _, p := range asked {
		extra := ""
		if rng.IntN(2) == 0 {
			extra = pick(rng, []string{"Hope that helps!", "Want a couple of alternatives?", "Let me know how it goes.", ""})
		}
		add(exchange{join(f.talk.opening(), p.ask), join(p.text, extra)})
	}
	kind := rng.IntN(3)
	book, at := -1, 0
	for size < budget {
		var e exchange
		switch {
		case kind == 0 && book < 0:
			book = pick(rng, f.kinds[bookStory])
			at = f.start(book)
			var paras []string
			paras, at = f.read(book, at, 2+rng.IntN(3))
			kid := f.talk.fillIn("{kid}")
			e = exchange{
				join(f.talk.opening(), f.talk.fillIn(pick(rng, storyAsks))),
				fmt.Sprintf(pick(rng, storyLeads), f.prose.Books[book].Title) + "\n\n" + strings.Join(paras, "\n\n") + "\n\n" +
					strings.ReplaceAll(pick(rng, storyEnds), "{kid}", kid),
			}
		case kind == 0:
			var paras []string
			paras, at = f.read(book, at, 2+rng.IntN(3))
			e = exchange{f.talk.fillIn(pick(rng, storyMores)), pick(rng, storyGoOns) + "\n\n" + strings.Join(paras, "\n\n")}
		case kind == 1 && book < 0:
			book = pick(rng, f.kinds[bookNovel])
			at = f.start(book)
			var pasted, paras []string
			pasted, at = f.read(book, at, 1)
			paras, at = f.read(book, at, 1+rng.IntN(3))
			e = exchange{
				join(f.talk.opening(), fmt.Sprintf(pick(rng, novelAsks), f.prose.Books[book].Title, pasted[0])),
				pick(rng, novelLeads) + "\n\n" + strings.Join(paras, "\n\n") + "\n\n" + pick(rng, novelEnds),
			}
		case kind == 1:
			var paras []string
			paras, at = f.read(book, at, 1+rng.IntN(3))
			e = exchange{pick(rng, novelMores), strings.Join(paras, "\n\n")}
		default:
			theme := pick(rng, quoteThemes)
			para, bk := f.quote(theme)
			b := f.prose.Books[bk]
			e = exchange{
				join(f.talk.opening(), fmt.Sprintf(pick(rng, quoteAsks), theme), f.talk.closing()),
				fmt.Sprintf("How about this, from %s by %s:\n\n%s", b.Title, b.Author, quoted(para)),
			}
		}
		if len(turns) > 1 && size+(len(e.user)+len(e.assistant))/2 > budget {
			break
		}
		add(e)
		if rng.IntN(5) == 0 {
			add(exchange{join(f.talk.opening(), f.talk.chatter(), f.talk.chatter()), f.talk.reply()})
		}
	}

	// User statements go into random user messages, one or two a message,
	// before or after what the message already says.
	for len(userPlants) > 0 {
		t := rng.IntN(len(turns))
		n := 1
		if len(userPlants) > len(turns) {
			n = min(len(userPlants), 2)
		}
		var said []string
		for _, p := range userPlants[:n] {
			said = append(said, join(pick(rng, asides), p.text))
		}
		userPlants = userPlants[n:]
		if rng.IntN(2) == 0 {
			turns[t].user = join(append(said, turns[t].user)...)
		} else {
			turns[t].user = join(append([]string{turns[t].user}, said...)...)
		}
	}
	var msgs []dataset.Message
	for _, e := range turns {
		msgs = append(msgs,
			dataset.Message{Role: dataset.RoleUser, Content: e.user},
			dataset.Message{Role: dataset.RoleAssistant, Content: e.assistant})
	}
	return msgs
}

// quoted puts a paragraph in double quotes unless it already opens with one.
func quoted(p string) string {
	if strings.HasPrefix(p, "\"") || strings.HasPrefix(p, "'") {
		return p
	}
	return "\"" + p + "\""
}

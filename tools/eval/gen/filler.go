package gen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// filler writes the conversation between planted facts: the user asks about
// a topic of the corpus (quoting a sentence or two of it) and the assistant
// answers with the next sentences of the same topic. Within a case no
// sentence repeats until the whole corpus is used up.
type filler struct {
	rng    *rand.Rand
	topics []Topic
	next   []int // next sentence of each topic (topics start at a random offset)
	left   []int // sentences of each topic not used yet
	live   []int // topics with sentences left
	cur    int   // current topic
}

// newFiller starts a filler over corpus.
func newFiller(rng *rand.Rand, corpus *Corpus) *filler {
	f := &filler{rng: rng, topics: corpus.Topics, cur: -1}
	f.next = make([]int, len(f.topics))
	f.left = make([]int, len(f.topics))
	f.reset()
	return f
}

// reset makes every sentence available again.
func (f *filler) reset() {
	f.live = f.live[:0]
	for i, t := range f.topics {
		f.left[i] = len(t.Sentences)
		if len(t.Sentences) > 0 {
			f.next[i] = f.rng.IntN(len(t.Sentences))
			f.live = append(f.live, i)
		}
	}
}

// switchTopic moves to a random topic that has sentences left, chosen
// with probability proportional to what it has left, so that conversations
// dwell on the big topics.
func (f *filler) switchTopic() {
	if len(f.live) == 0 {
		f.reset()
	}
	total := 0
	for _, i := range f.live {
		total += f.left[i]
	}
	r := f.rng.IntN(total)
	for _, i := range f.live {
		if r -= f.left[i]; r < 0 {
			f.cur = i
			return
		}
	}
}

// sentence returns the next sentence of the current topic.
func (f *filler) sentence() string {
	if f.cur < 0 || f.left[f.cur] == 0 {
		f.switchTopic()
	}
	t := f.topics[f.cur]
	s := t.Sentences[f.next[f.cur]]
	f.next[f.cur] = (f.next[f.cur] + 1) % len(t.Sentences)
	f.left[f.cur]--
	if f.left[f.cur] == 0 {
		if i := slices.Index(f.live, f.cur); i >= 0 {
			f.live = slices.Delete(f.live, i, i+1)
		}
	}
	return s
}

// turn writes one user question and assistant answer.
func (f *filler) turn() turn {
	if f.cur < 0 || f.left[f.cur] == 0 || f.rng.IntN(4) == 0 {
		f.switchTopic()
	}
	subject := fmt.Sprintf("the %s package", f.topics[f.cur].Name)
	u := []string{fmt.Sprintf(userOpeners[f.rng.IntN(len(userOpeners))], subject)}
	for range 1 + f.rng.IntN(2) {
		u = append(u, f.sentence())
	}
	if f.rng.IntN(10) < 7 {
		u = append(u, userClosers[f.rng.IntN(len(userClosers))])
	}
	var a []string
	if o := assistantOpeners[f.rng.IntN(len(assistantOpeners))]; o != "" {
		a = append(a, o)
	}
	for range 3 + f.rng.IntN(6) {
		a = append(a, f.sentence())
	}
	return turn{user: strings.Join(u, " "), assistant: strings.Join(a, " ")}
}

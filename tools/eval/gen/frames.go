package gen

import (
	"fmt"
	"strings"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// A frame plants one question's evidence and its distractors and records
// the question. Each question type has several frames; a case rotates
// through them.
type frame func(b *builder)

// framesByType lists the frames of each question type.
var framesByType = map[string][]frame{
	dataset.TypeSingleFact: {
		attrFrame(dataset.TypeSingleFact,
			func(b *builder) string { return b.number(100, 999) },
			"%s's locker number at the climbing gym is %s.", "What is %s's locker number at the climbing gym?"),
		attrFrame(dataset.TypeSingleFact,
			func(b *builder) string { return b.pick("teas", teas) },
			"%s's favorite tea is %s.", "What is %s's favorite tea?"),
		attrFrame(dataset.TypeSingleFact,
			func(b *builder) string { return b.pick("subjects", subjects) },
			"%s's daughter is studying %s at university.", "What is %s's daughter studying at university?"),
	},
	// Paraphrases share only the person's name with the evidence.
	dataset.TypeParaphrase: {
		attrFrame(dataset.TypeParaphrase,
			func(b *builder) string { return b.pick("instruments", instruments) },
			"%s plays the %s in a community orchestra.", "Which instrument does %s perform with in a local ensemble?"),
		attrFrame(dataset.TypeParaphrase,
			func(b *builder) string { return b.pick("streets", streets) },
			"%s moved into a flat on %s last spring.", "What street does %s live on now?"),
		attrFrame(dataset.TypeParaphrase,
			func(b *builder) string { return b.pick("companies", companies) },
			"%s accepted an offer from %s in March.", "Who does %s work for these days?"),
		attrFrame(dataset.TypeParaphrase,
			func(b *builder) string { return b.pick("medications", medications) },
			"%s breaks out in hives after taking %s.", "Which medication is %s allergic to?"),
	},
	dataset.TypeKnowledgeUpdate: {
		updateFrame(func(b *builder) string { return b.number(1000, 9999) },
			"%s's desk extension is %s.",
			func(p, _, v string) string { return fmt.Sprintf("%s has a new desk extension now: %s.", p, v) },
			"What is %s's desk extension now?"),
		updateFrame(func(b *builder) string { return b.pick("cities", cities) },
			"%s lives in %s.",
			func(p, old, v string) string { return fmt.Sprintf("%s just moved from %s to %s.", p, old, v) },
			"Which city does %s live in now?"),
		updateFrame(func(b *builder) string { return b.money(18000, 95000, 500, false) },
			"The budget for %s's kitchen renovation is %s.",
			func(p, _, v string) string {
				return fmt.Sprintf("The budget for %s's kitchen renovation went up to %s.", p, v)
			},
			"How much is the budget for %s's kitchen renovation now?"),
	},
	dataset.TypeExactQuote: {
		codeFrame(func(b *builder) string {
			return tripKinds[b.rng.IntN(len(tripKinds))] + " " + b.pick("cities", cities)
		}, "LL-DDDD-LL", "The confirmation code for my %s is %s.", "What is the confirmation code for my %s?"),
		codeFrame(func(b *builder) string { return b.pick("products", products) },
			"XXXX-XXXX-XXXX", "The license key for %s is %s.", "What is the license key for %s?"),
		codeFrame(func(b *builder) string { return b.pick("parcels", parcels) },
			"1ZXXXXXXDDDDDDDDDD", "The tracking number for the %s I ordered is %s.", "What is the tracking number for the %s I ordered?"),
	},
	dataset.TypeAssistantSaid: {
		saidFrame(func(b *builder) (string, string) { return b.pick("named", namedThings), b.pick("names", thingNames) },
			"Can you suggest a name for my new %s?", "For your new %s, I suggest the name %s.", "What name did you suggest for my new %s?"),
		saidFrame(func(b *builder) (string, string) {
			return b.pick("loans", loanThings), b.money(120, 1900, 1, true)
		}, "What would the monthly payment be on the %s loan?", "The monthly payment on the %s loan comes to %s.",
			"What monthly payment did you calculate for the %s loan?"),
		saidFrame(func(b *builder) (string, string) { return b.pick("dishes", dishes), b.pick("wines", wines) },
			"Which wine would go well with %s?", "With %s, I recommend a bottle of %s.", "Which wine did you recommend with %s?"),
	},
	dataset.TypeMultiEvidence: {
		multiFrame(func(b *builder) string { return b.pick("cities", cities) }, []string{
			"%[1]s spent a week in %[2]s for work.", "%[1]s flew to %[2]s for a conference.", "%[1]s just got back from a business trip to %[2]s.",
		}, "Which cities has %s traveled to for work?"),
		multiFrame(func(b *builder) string { return b.pick("gifts", gifts) }, []string{
			"I bought %[2]s for %[1]s's birthday.", "I also picked up %[2]s as a present for %[1]s.", "For %[1]s, I ordered %[2]s as a gift.",
		}, "What gifts have I gotten for %s?"),
		multiFrame(func(b *builder) string { return b.pick("languages", languages) }, []string{
			"%[1]s speaks fluent %[2]s.", "%[1]s has been learning %[2]s on weekends.", "%[1]s grew up speaking %[2]s at home.",
		}, "Which languages does %s speak or study?"),
	},
	// The second hop names only the bridge (B) and the answer, never a word
	// of the question.
	dataset.TypeMultiHop: {
		hopFrame(func(b *builder) (string, string) {
			return b.person(), relations[b.rng.IntN(len(relations))]
		}, func(b *builder) string { return b.person() },
			func(b *builder) string { return b.pick("professions", professions) },
			func(a, rel, bridge string) string { return fmt.Sprintf("%s's %s is %s.", a, rel, bridge) },
			func(bridge, v string) string { return fmt.Sprintf("%s works as %s %s.", bridge, article(v), v) },
			func(a, rel string) string { return fmt.Sprintf("What does %s's %s do for a living?", a, rel) }),
		hopFrame(func(b *builder) (string, string) { return b.pick("projects", projects), "" },
			func(b *builder) string { return b.person() },
			func(b *builder) string { return b.pick("cities", cities) },
			func(a, _, bridge string) string { return fmt.Sprintf("The %s project is led by %s.", a, bridge) },
			func(bridge, v string) string { return fmt.Sprintf("%s is originally from %s.", bridge, v) },
			func(a, _ string) string { return fmt.Sprintf("Where does the head of the %s project come from?", a) }),
		hopFrame(func(b *builder) (string, string) { return b.person(), "" },
			func(b *builder) string { return b.pick("pets", pets) },
			func(b *builder) string { return b.pick("fears", fears) },
			func(a, _, bridge string) string { return fmt.Sprintf("%s adopted a rescue dog named %s.", a, bridge) },
			func(bridge, v string) string { return fmt.Sprintf("%s is terrified of %s.", bridge, v) },
			func(a, _ string) string { return fmt.Sprintf("What is %s's dog afraid of?", a) }),
	},
	// Temporal questions name only a date; statements of one frame lie in
	// different sessions, so the date decides.
	dataset.TypeTemporal: {
		dateFrame("lunch", func(b *builder) string { return b.pick("restaurants", restaurants) },
			"Today I had lunch at %s.", "Where did I have lunch on %s?"),
		dateFrame("repair", func(b *builder) string { return b.pick("repairs", repairs) },
			"This morning I finally fixed the %s.", "What did I finally fix on %s?"),
		dateFrame("book", func(b *builder) string { return b.pick("books", books) },
			"Today I finished reading %s.", "Which book did I finish reading on %s?"),
	},
	// Lexical-gap questions share no content word with their evidence.
	dataset.TypeLexicalGap: {
		gapFrame("specialists", specialists, func(b *builder) string { return b.pick("cutbacks", cutBacks) },
			"My %s told me to cut back on %s.", "What did the %s advise me to have less of?"),
		gapFrame("furniture", furniture, func(b *builder) string { return b.pick("colors", colors) },
			"The %s we purchased last weekend is %s.", "Which shade is the %s I bought recently?"),
	},
}

// attrFrame: "<person> <attribute> <value>" asked by person; distractors
// state the same attribute of other people.
func attrFrame(typ string, value func(*builder) string, stmt, question string) frame {
	return func(b *builder) {
		p, v := b.person(), value(b)
		e := b.user(stmt, p, v)
		b.ask(typ, fmt.Sprintf(question, p), v, e)
		for range distractors {
			b.user(stmt, b.person(), value(b))
		}
	}
}

// updateFrame: a person's value stated, then changed once or twice in later
// sessions; the newest statement is the evidence. Distractors state the
// same attribute of other people once.
func updateFrame(value func(*builder) string, first string, update func(p, old, v string) string, question string) frame {
	return func(b *builder) {
		p := b.person()
		v := value(b)
		chain := []*plant{b.user(first, p, v)}
		for range 1 + b.rng.IntN(2) {
			nv := value(b)
			chain = append(chain, b.say(dataset.RoleUser, update(p, v, nv)))
			v = nv
		}
		b.constrain(true, true, chain...)
		b.ask(dataset.TypeKnowledgeUpdate, fmt.Sprintf(question, p), v, chain[len(chain)-1])
		for range distractors {
			b.user(first, b.person(), value(b))
		}
	}
}

// codeFrame: an opaque code for a keyed thing; one distractor is a
// near-miss of the code for another thing, the others fresh codes.
func codeFrame(key func(*builder) string, pattern, stmt, question string) frame {
	return func(b *builder) {
		k, code := key(b), b.code(pattern)
		e := b.user(stmt, k, code)
		b.ask(dataset.TypeExactQuote, fmt.Sprintf(question, k), code, e)
		for i := range distractors {
			other := b.code(pattern)
			if i == 0 {
				other = b.nearMiss(code)
			}
			b.user(stmt, key(b), other)
		}
	}
}

// saidFrame: the user asks, the assistant answers with the evidence; the
// question asks what the assistant said. Distractors are other answered
// requests of the same shape.
func saidFrame(draw func(*builder) (string, string), request, reply, question string) frame {
	return func(b *builder) {
		k, v := draw(b)
		e := b.answer(fmt.Sprintf(request, k), fmt.Sprintf(reply, k, v))
		b.ask(dataset.TypeAssistantSaid, fmt.Sprintf(question, k), v, e)
		for range distractors {
			k, v := draw(b)
			b.answer(fmt.Sprintf(request, k), fmt.Sprintf(reply, k, v))
		}
	}
}

// multiFrame: two or three statements about one person in different
// sessions, each with one part of the answer. Distractors state one value
// for other people.
func multiFrame(value func(*builder) string, stmts []string, question string) frame {
	return func(b *builder) {
		p := b.person()
		n := 2 + b.rng.IntN(2)
		var ev []*plant
		var parts []string
		for i := range n {
			v := value(b)
			ev = append(ev, b.user(stmts[i%len(stmts)], p, v))
			parts = append(parts, v)
		}
		b.constrain(true, false, ev...)
		q := b.ask(dataset.TypeMultiEvidence, fmt.Sprintf(question, p), strings.Join(parts, dataset.AnswerSeparator), ev...)
		q.parts = parts
		for i := range distractors {
			b.user(stmts[i%len(stmts)], b.person(), value(b))
		}
	}
}

// hopFrame: A→bridge, bridge→value; the question names A only. One
// distractor chain for another A, and one lone second hop for another
// bridge.
func hopFrame(head func(*builder) (string, string), bridge, value func(*builder) string,
	hop1 func(a, rel, bridge string) string, hop2 func(bridge, v string) string, question func(a, rel string) string) frame {
	return func(b *builder) {
		a, rel := head(b)
		br, v := bridge(b), value(b)
		e1 := b.say(dataset.RoleUser, hop1(a, rel, br))
		e2 := b.say(dataset.RoleUser, hop2(br, v))
		b.ask(dataset.TypeMultiHop, question(a, rel), v, e1, e2)
		a2, rel2 := head(b)
		br2 := bridge(b)
		b.say(dataset.RoleUser, hop1(a2, rel2, br2))
		b.say(dataset.RoleUser, hop2(br2, value(b)))
		b.say(dataset.RoleUser, hop2(bridge(b), value(b)))
	}
}

// dateFrame: "Today I …" statements of one kind in different sessions; the
// question gives the session's date.
func dateFrame(kind string, value func(*builder) string, stmt, question string) frame {
	return func(b *builder) {
		v := value(b)
		e := b.user(stmt, v)
		q := b.ask(dataset.TypeTemporal, fmt.Sprintf(question, datePlaceholder), v, e)
		q.date = e
		b.sharedDistinct(kind, e)
		for range distractors {
			b.sharedDistinct(kind, b.user(stmt, value(b)))
		}
	}
}

// gapFrame: the evidence uses one word of a synonym pair, the question the
// other; distractors use other pairs.
func gapFrame(name string, pairs [][2]string, value func(*builder) string, stmt, question string) frame {
	return func(b *builder) {
		pair, v := b.pickPair(name, pairs), value(b)
		e := b.user(stmt, pair[0], v)
		b.ask(dataset.TypeLexicalGap, fmt.Sprintf(question, pair[1]), v, e)
		for range distractors {
			b.user(stmt, b.pickPair(name, pairs)[0], value(b))
		}
	}
}

// article returns "an" before a vowel sound (by spelling), else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}

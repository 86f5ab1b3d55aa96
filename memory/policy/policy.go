// Package policy detects sensitive spans in text and filters them for
// callers that are not cleared to see them.
//
// A Policy is compiled from a list of Rules. Each rule names either a
// built-in detector (email, phone, credit_card, iban, api_key, ip_address)
// or a custom Go regular expression, an action (redact or exclude) and the
// scopes that may see what it matches. At ingest, Scan tags text with the
// spans the rules match; the spans (or at least their rule names, see Tags)
// are stored with the text. When text is about to be shown to a caller,
// Apply redacts or excludes the spans whose rules the caller's scopes do not
// clear. Filter does both for text that was never stored, such as the live
// turn.
//
// The built-in detectors are hand-written single-pass scanners tuned for
// precision: each candidate is validated (Luhn and issuer prefixes for
// cards, mod-97 and per-country lengths for IBANs, octet ranges for IP
// addresses, dialing formats for phone numbers, known prefixes and Shannon
// entropy for secrets), and numeric look-alikes such as dates, versions,
// times and plain long numbers are rejected.
package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Actions a rule may take on the spans it matches.
const (
	// ActionRedact replaces the span with a [redacted:NAME] marker.
	ActionRedact = "redact"
	// ActionExclude withholds the whole block that holds the span.
	ActionExclude = "exclude"
)

// Rule is one entry of the policy configuration. Exactly one of Detector and
// Pattern must be set.
type Rule struct {
	// Name identifies the rule in stored tags, audit counts and (for
	// pattern rules) redaction markers. It defaults to Detector for
	// built-in detectors and is required for pattern rules.
	Name string `mapstructure:"name" yaml:"name"`
	// Detector names a built-in detector: email, phone, credit_card, iban,
	// api_key or ip_address (see Detectors).
	Detector string `mapstructure:"detector" yaml:"detector"`
	// Pattern is a Go regular expression (regexp/syntax) for custom rules.
	Pattern string `mapstructure:"pattern" yaml:"pattern"`
	// Action is "redact" (the default when empty) or "exclude".
	Action string `mapstructure:"action" yaml:"action"`
	// AllowScopes lists the caller scopes that may see matched spans
	// unfiltered. Empty means no caller may.
	AllowScopes []string `mapstructure:"allow_scopes" yaml:"allow_scopes"`
}

// Span is a matched range of bytes, text[Start:End], tagged with the name
// of the rule that matched it.
type Span struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Rule  string `json:"rule"`
}

// Hit records one span that Apply filtered, for audit counting.
type Hit struct {
	// Rule is the name of the rule whose span was filtered.
	Rule string `json:"rule"`
	// Action is the action taken: ActionRedact or ActionExclude.
	Action string `json:"action"`
}

// Policy is a compiled, immutable set of rules. It is safe for concurrent
// use. The zero Policy and a nil *Policy match nothing.
type Policy struct {
	rules  []compiledRule
	byName map[string]int
}

type compiledRule struct {
	name   string
	action string
	label  string // what goes inside [redacted:...]
	allow  []string
	detect detectFunc
	// grouped marks detectors of digit groups (cards, phones, IBANs), the
	// only ones that also read the view where format characters separate
	// (see newViews).
	grouped bool
	pattern *regexp.Regexp
}

// Compile validates rules and compiles them into a Policy. Rule order
// matters only when spans of different rules overlap (see Scan). An empty
// list compiles to a Policy that matches nothing.
func Compile(rules []Rule) (*Policy, error) {
	p := &Policy{byName: make(map[string]int, len(rules))}
	for i, r := range rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("policy: rule %d (%q): %w", i, ruleLabel(r), err)
		}
		if j, dup := p.byName[cr.name]; dup {
			return nil, fmt.Errorf("policy: rule %d: duplicate rule name %q (also rule %d)", i, cr.name, j)
		}
		p.byName[cr.name] = len(p.rules)
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

func ruleLabel(r Rule) string {
	if r.Name != "" {
		return r.Name
	}
	return r.Detector
}

func compileRule(r Rule) (compiledRule, error) {
	cr := compiledRule{name: strings.TrimSpace(r.Name)}
	detector := strings.TrimSpace(r.Detector)
	switch {
	case detector == "" && r.Pattern == "":
		return cr, errors.New("neither detector nor pattern is set")
	case detector != "" && r.Pattern != "":
		return cr, errors.New("both detector and pattern are set; use one")
	case detector != "":
		d, ok := detectorFunc(detector)
		if !ok {
			return cr, fmt.Errorf("unknown detector %q (known: %s)", detector, strings.Join(Detectors(), ", "))
		}
		cr.detect = d
		cr.grouped = detector == DetectorCreditCard || detector == DetectorPhone || detector == DetectorIBAN
		cr.label = detector
		if cr.name == "" {
			cr.name = detector
		}
	default:
		if cr.name == "" {
			return cr, errors.New("a pattern rule needs a name")
		}
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			return cr, fmt.Errorf("bad pattern: %w", err)
		}
		cr.pattern = re
		cr.label = cr.name
	}
	if strings.ContainsAny(cr.name, "[]:\n\r\t") {
		return cr, fmt.Errorf("rule name %q must not contain brackets, colons or control whitespace", cr.name)
	}
	switch a := strings.ToLower(strings.TrimSpace(r.Action)); a {
	case "", ActionRedact:
		cr.action = ActionRedact
	case ActionExclude:
		cr.action = ActionExclude
	default:
		return cr, fmt.Errorf("unknown action %q (want %q or %q)", r.Action, ActionRedact, ActionExclude)
	}
	for _, s := range r.AllowScopes {
		s = strings.TrimSpace(s)
		if s == "" {
			return cr, errors.New("empty scope in allow_scopes")
		}
		cr.allow = append(cr.allow, s)
	}
	return cr, nil
}

// Excludes reports whether the named rule's action is exclude.
func (p *Policy) Excludes(rule string) bool {
	if p == nil {
		return false
	}
	i, ok := p.byName[rule]
	return ok && p.rules[i].action == ActionExclude
}

// Cleared reports whether a caller holding scopes may see the spans of the
// named rule unfiltered (and so may change where the rule applies). It is
// false for a rule the policy does not have.
func (p *Policy) Cleared(rule string, scopes []string) bool {
	if p == nil {
		return false
	}
	i, ok := p.byName[rule]
	return ok && p.rules[i].cleared(scopes)
}

// Rules returns the names of the compiled rules in configuration order.
func (p *Policy) Rules() []string {
	if p == nil {
		return nil
	}
	names := make([]string, len(p.rules))
	for i, r := range p.rules {
		names[i] = r.name
	}
	return names
}

// Scan returns the spans of text that the policy's rules match, sorted by
// Start and non-overlapping. Rules run on the text and on its normalized
// view (see view: compatibility forms, invisible characters, typographic
// and defanged separators), so that a value written to evade a detector is
// found too; spans are always offsets into text itself. Overlapping matches (of one rule or of several)
// are merged into one span covering their union, so that no byte of any
// match escapes; the merged span is tagged with the most restrictive of the
// rules involved: an exclude rule wins over a redact rule, and otherwise
// the rule listed first in the configuration wins. Adjacent matches that
// only touch are kept apart. Offsets are byte offsets and always fall on
// UTF-8 boundaries of valid text.
func (p *Policy) Scan(text string) []Span {
	if p == nil || len(p.rules) == 0 || text == "" {
		return nil
	}
	type cand struct {
		start, end int
		rule       int
	}
	var cands []cand
	var buf []match
	views := newViews(text)
	for ri := range p.rules {
		r := &p.rules[ri]
		buf = r.find(text, buf[:0])
		for _, m := range buf {
			cands = append(cands, cand{m.start, m.end, ri})
		}
		// What the views reveal, mapped back onto the original.
		for _, v := range views {
			if v.formatAsSpace && !r.grouped {
				continue
			}
			buf = r.find(v.text, buf[:0])
			for _, m := range buf {
				start, end := v.original(m.start, m.end)
				cands = append(cands, cand{start, end, ri})
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.start != b.start {
			return a.start < b.start
		}
		if a.end != b.end {
			return a.end > b.end
		}
		return a.rule < b.rule
	})
	spans := make([]Span, 0, len(cands))
	cur := cands[0]
	for _, c := range cands[1:] {
		if c.start < cur.end { // overlap: merge
			if c.end > cur.end {
				cur.end = c.end
			}
			if p.stronger(c.rule, cur.rule) {
				cur.rule = c.rule
			}
			continue
		}
		spans = append(spans, Span{cur.start, cur.end, p.rules[cur.rule].name})
		cur = c
	}
	spans = append(spans, Span{cur.start, cur.end, p.rules[cur.rule].name})
	return spans
}

// find appends the rule's matches in s to dst.
func (r *compiledRule) find(s string, dst []match) []match {
	if r.detect != nil {
		return r.detect(s, dst)
	}
	for _, loc := range r.pattern.FindAllStringIndex(s, -1) {
		if loc[1] > loc[0] {
			dst = append(dst, match{loc[0], loc[1]})
		}
	}
	return dst
}

// stronger reports whether rule a takes precedence over rule b for a merged
// span: exclude beats redact, then configuration order.
func (p *Policy) stronger(a, b int) bool {
	ea := p.rules[a].action == ActionExclude
	eb := p.rules[b].action == ActionExclude
	if ea != eb {
		return ea
	}
	return a < b
}

// Tags returns the distinct rule names of spans in order of first
// appearance, for storing with the text. It returns nil for no spans.
func Tags(spans []Span) []string {
	var tags []string
	for _, s := range spans {
		if !slices.Contains(tags, s.Rule) {
			tags = append(tags, s.Rule)
		}
	}
	return tags
}

// Apply filters text for a caller holding scopes, given spans that Scan
// produced for text (typically stored with it). For each span whose rule's
// AllowScopes share no scope with the caller's, the span is replaced with
// "[redacted:LABEL]", where LABEL is the detector name for built-in rules
// (e.g. "[redacted:email]") and the rule name for pattern rules; if the
// rule's action is exclude, excluded is true and the caller must drop the
// whole block (its spans are still replaced in out, as defense in depth).
// hits lists one Hit per filtered span, in text order.
//
// A caller cleared for every span gets text back unchanged. Spans are
// handled defensively, since they may come from storage: they are sorted,
// clipped to the text, trimmed where they overlap an earlier span, and
// spans of rules the policy no longer has are ignored (re-Scan text after
// changing the policy).
func (p *Policy) Apply(text string, spans []Span, scopes []string) (out string, excluded bool, hits []Hit) {
	if p == nil || len(spans) == 0 {
		return text, false, nil
	}
	if !sort.SliceIsSorted(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start }) {
		spans = slices.Clone(spans)
		sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	}
	var b strings.Builder
	last := 0 // end of the text already copied or replaced
	for _, s := range spans {
		ri, ok := p.byName[s.Rule]
		if !ok {
			continue
		}
		r := &p.rules[ri]
		if r.cleared(scopes) {
			continue
		}
		start, end := max(s.Start, last), min(s.End, len(text))
		if start >= end {
			continue
		}
		if b.Len() == 0 && last == 0 {
			b.Grow(len(text))
		}
		b.WriteString(text[last:start])
		b.WriteString("[redacted:")
		b.WriteString(r.label)
		b.WriteByte(']')
		last = end
		hits = append(hits, Hit{Rule: r.name, Action: r.action})
		if r.action == ActionExclude {
			excluded = true
		}
	}
	if len(hits) == 0 {
		return text, false, nil
	}
	b.WriteString(text[last:])
	return b.String(), excluded, hits
}

// Filter scans text and applies the policy for a caller holding scopes in
// one step: Apply(text, Scan(text), scopes). Use it for text that has no
// stored spans, such as the live turn.
func (p *Policy) Filter(text string, scopes []string) (out string, excluded bool, hits []Hit) {
	return p.Apply(text, p.Scan(text), scopes)
}

// cleared reports whether a caller holding scopes may see the rule's spans.
func (r *compiledRule) cleared(scopes []string) bool {
	for _, a := range r.allow {
		if slices.Contains(scopes, a) {
			return true
		}
	}
	return false
}

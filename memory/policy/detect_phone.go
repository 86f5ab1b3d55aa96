package policy

// phoneTiles says how telephone numbers sit in a run of digit groups: 8
// to 17 digits ("00" exit code included) in at most twelve groups, the
// first number starting the run.
var phoneTiles = tileSpec{minDigits: 8, maxDigits: 17, maxGroups: 12, valid: validPhoneGroups}

// findPhones finds telephone numbers written the way people write them:
//
//   - international: "+" and a 1 to 3 digit country code (or "00" and the
//     code), 8 to 15 digits in all (E.164), e.g. "+44 20 7946 0958",
//     "+1 (555) 123-4567", "+14155552671", "0049 30 1234567";
//   - North American: "(555) 123-4567", "555-123-4567", "555.123.4567",
//     "1-800-555-0199", with consistent separators;
//   - national with a trunk "0": "020 7946 0958", "030 12345678",
//     "01 23 45 67 89", "06-12345678": 10 to 12 digits in groups of at
//     least two with consistent separators.
//
// Plain digit runs without separators (other than "+" E.164), dates
// ("2024-01-15", "01 02 2024"), versions ("1.22.3"), times, IP addresses
// and numbers glued to words or to other numeric structures are rejected,
// unless what they are glued to is another number: several numbers in a
// row are all found, whatever separates them, nothing included (see
// tileRun).
func findPhones(s string, dst []match) []match {
	var (
		t       runTiler
		groups  []digitGroup
		lastEnd = -1 // end of the last number found
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '+' && c != '(' && !isDigit(c) {
			continue
		}
		var plus bool
		groups, plus = scanPhoneRun(s, i, groups[:0])
		if len(groups) == 0 {
			continue
		}
		end := groups[len(groups)-1].end
		if groups[len(groups)-1].paren {
			end++
		}
		if end-i < phoneTiles.minDigits || !plus && !phoneFirstGroup(s, groups[0]) {
			// Too few bytes for the digits of a number, or a first group
			// that starts none: numbers start their run.
			i = end - 1
			continue
		}
		// A number right after another ("…0958+1 555…", "…5678,+44…")
		// is not glued to a numeric structure but next to its neighbour.
		glued := numericLeft(s, i) && !(i == lastEnd || i == lastEnd+1 && isRunJoiner(s[lastEnd]))
		spec := &phoneTiles
		if plus {
			spec = &plusPhoneTiles
		}
		n := len(dst)
		dst = tilePhoneRun(&t, s, groups, i, glued, numericRight(s, end), spec, dst)
		if len(dst) > n {
			lastEnd = dst[len(dst)-1].end
		}
		i = end - 1
	}
	return dst
}

// maxPhoneStretch is the most groups of at most three digits that a
// stretch of a run joined only by the separators of telephone numbers
// (spaces, dashes, dots) may have and still hold one: longer stretches are
// tables of small numbers, byte dumps ("01 02 01 01 58 01 04 00 …") or
// numbered lists, where any ten digits starting with 0 would read as a
// national number.
const maxPhoneStretch = 12

// tilePhoneRun tiles a run of digit groups starting at s[runStart] (see
// tileRun), leaving out its stretches of more than maxPhoneStretch short
// groups (of at most three digits): the parts between them are tiled as
// runs of their own, glued to them.
func tilePhoneRun(t *runTiler, s string, g []digitGroup, runStart int, gluedLeft, gluedRight bool, spec *tileSpec, dst []match) []match {
	from := 0 // first group of the part not yet tiled
	for a := 0; a < len(g); {
		if g[a].end-g[a].start > 3 {
			a++
			continue
		}
		b := a + 1 // the stretch is g[a:b]
		for b < len(g) && g[b].end-g[b].start <= 3 && (g[b].sep == ' ' || g[b].sep == '-' || g[b].sep == '.' || g[b].sep == 0) {
			b++
		}
		if b-a > maxPhoneStretch {
			if a > from {
				dst = t.tileRun(s, g[from:a], partStart(g, from, runStart), gluedLeft, true, spec, dst)
			}
			from, gluedLeft = b, true
			if spec == &plusPhoneTiles {
				spec = &phoneTiles
			}
		}
		a = b
	}
	if from < len(g) {
		dst = t.tileRun(s, g[from:], partStart(g, from, runStart), gluedLeft, gluedRight, spec, dst)
	}
	return dst
}

// partStart returns where the part of a run from group k starts.
func partStart(g []digitGroup, k, runStart int) int {
	switch {
	case k == 0:
		return runStart
	case g[k].paren:
		return g[k].start - 1
	}
	return g[k].start
}

// phoneFirstGroup reports whether a number written without a '+' may start
// with the group g, as validPhone requires: a trunk or exit-code group of
// two to five digits starting with 0, a North American area code of three
// digits, or the "1" before one.
func phoneFirstGroup(s string, g digitGroup) bool {
	n := g.end - g.start
	if s[g.start] == '0' {
		return n >= 2 && n <= 5
	}
	return n == 3 || n == 1 && s[g.start] == '1' && !g.paren
}

// plusPhoneTiles is phoneTiles for a run written after a '+'.
var plusPhoneTiles = tileSpec{minDigits: 8, maxDigits: 17, maxGroups: 12, valid: validPlusPhoneGroups}

// scanPhoneRun appends the digit groups of the run starting at s[i] to
// groups, and reports whether the run starts with a '+'.
func scanPhoneRun(s string, i int, groups []digitGroup) ([]digitGroup, bool) {
	j := i
	plus := s[j] == '+'
	if plus {
		j++
	}
	var sep byte
	for {
		g := digitGroup{sep: sep}
		k := j
		if k < len(s) && s[k] == '(' {
			g.paren = true
			k++
		}
		g.start = k
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		g.end = k
		if g.end == g.start || g.paren && byteAt(s, k) != ')' {
			return groups, plus
		}
		if g.paren {
			k++
		}
		groups = append(groups, g)
		j = k
		switch c := byteAt(s, j); {
		case isRunJoiner(c) && (isDigit(byteAt(s, j+1)) || byteAt(s, j+1) == '(' && isDigit(byteAt(s, j+2))):
			sep = c
			j++
		case g.paren && isDigit(c), c == '(' && isDigit(byteAt(s, j+1)):
			sep = 0
		default:
			return groups, plus
		}
	}
}

// validPhoneGroups reports whether g is a telephone number written without
// a '+'.
func validPhoneGroups(s string, g []digitGroup, _ bool) bool {
	return phoneSeparators(g) && validPhone(s, false, g)
}

// validPlusPhoneGroups is validPhoneGroups for the runs written after a
// '+', which belongs to the run's first number.
func validPlusPhoneGroups(s string, g []digitGroup, first bool) bool {
	return phoneSeparators(g) && validPhone(s, first, g)
}

// phoneSeparators reports whether the groups of a candidate are joined by
// separators that telephone numbers use: a space, a dash, a dot, or none
// next to a parenthesized group.
func phoneSeparators(g []digitGroup) bool {
	for k := 1; k < len(g); k++ {
		switch g[k].sep {
		case ' ', '-', '.':
		case 0:
			if !g[k].paren && !g[k-1].paren {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// validPhone checks digit groups against the accepted dialing formats.
func validPhone(s string, plus bool, g []digitGroup) bool {
	digits := 0
	for _, x := range g {
		digits += x.end - x.start
	}
	first := s[g[0].start:g[0].end]
	switch {
	case plus:
		if g[0].paren {
			return false
		}
		if len(g) == 1 {
			return digits >= 8 && digits <= 15 && first[0] != '0'
		}
		return len(first) <= 3 && first[0] != '0' && digits >= 8 && digits <= 15
	case len(first) >= 2 && first[:2] == "00" && !g[0].paren:
		// International with the "00" exit code.
		if len(g) < 2 {
			return false
		}
		cc := byteAt(s, g[0].start+2)
		if len(first) == 2 {
			cc = s[g[1].start]
		}
		return len(first) <= 5 && cc != '0' && digits-2 >= 8 && digits-2 <= 15
	case first[0] == '0':
		return validNationalPhone(s, g, digits)
	default:
		return validNANPPhone(s, g)
	}
}

// validNANPPhone accepts North American numbers: an optional "1", then a
// 3-digit area code (optionally in parentheses), a 3-digit exchange and a
// 4-digit line, area code and exchange starting with 2-9.
func validNANPPhone(s string, g []digitGroup) bool {
	if len(g) == 4 && !g[0].paren && s[g[0].start:g[0].end] == "1" {
		g = g[1:]
	}
	if len(g) != 3 {
		return false
	}
	if g[0].end-g[0].start != 3 || g[1].end-g[1].start != 3 || g[2].end-g[2].start != 4 || g[1].paren || g[2].paren {
		return false
	}
	if s[g[0].start] < '2' || s[g[1].start] < '2' {
		return false
	}
	if g[2].sep == 0 {
		return false
	}
	if g[0].paren {
		return g[1].sep == 0 || g[1].sep == ' ' || g[1].sep == '-'
	}
	return g[1].sep == g[2].sep
}

// validNationalPhone accepts numbers with a trunk prefix "0": 10 to 12
// digits in at least two groups of at least two digits, the first of 2 to
// 5 digits, joined by one kind of separator; date and IP shapes rejected.
func validNationalPhone(s string, g []digitGroup, digits int) bool {
	if len(g) < 2 || digits < 10 || digits > 12 {
		return false
	}
	if n := g[0].end - g[0].start; n < 2 || n > 5 {
		return false
	}
	var sep byte
	short := true // every group has at most 3 digits
	for k, x := range g {
		n := x.end - x.start
		if n < 2 || (k > 0 && x.paren) {
			return false
		}
		if n > 3 {
			short = false
		}
		if k == 0 || (k == 1 && g[0].paren) {
			continue
		}
		if sep == 0 {
			sep = x.sep
		}
		if x.sep == 0 || x.sep != sep {
			return false
		}
	}
	if len(g) >= 3 && g[0].end-g[0].start == 2 && g[1].end-g[1].start == 2 && g[2].end-g[2].start == 4 {
		return false // dd mm yyyy
	}
	if len(g) == 4 && short && sep == '.' {
		return false // dotted quad
	}
	return true
}

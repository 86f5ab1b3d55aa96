package policy

// maxPhoneGroups bounds the digit groups of one phone candidate.
const maxPhoneGroups = 12

// phoneGroup is one run of digits of a phone candidate, s[start:end],
// optionally written in parentheses.
type phoneGroup struct {
	start, end int
	paren      bool
	sep        byte // separator before this group: ' ', '-', '.', or 0 for none
	stop       int  // end of the candidate if it ends with this group
}

// phoneRun is a candidate: digit groups joined by single separators.
type phoneRun struct {
	plus   bool
	n      int // number of groups (may exceed maxPhoneGroups)
	groups [maxPhoneGroups]phoneGroup
	end    int
}

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
// and numbers glued to words or to other numeric structures are rejected.
func findPhones(s string, dst []match) []match {
	var run phoneRun
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '+' && c != '(' && !isDigit(c) {
			continue
		}
		scanPhoneRun(s, i, &run)
		if run.n == 0 {
			continue
		}
		if !numericLeft(s, i) {
			if end, ok := validPhoneRun(s, &run); ok {
				dst = append(dst, match{i, end})
			}
		}
		i = run.end - 1
	}
	return dst
}

// scanPhoneRun reads the candidate starting at s[i] into run.
func scanPhoneRun(s string, i int, run *phoneRun) {
	*run = phoneRun{end: i}
	j := i
	if s[j] == '+' {
		run.plus = true
		j++
	}
	var sep byte
	for {
		g := phoneGroup{sep: sep}
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
		if g.end == g.start {
			return
		}
		if g.paren {
			if k >= len(s) || s[k] != ')' {
				return
			}
			k++
		}
		g.stop = k
		if run.n < maxPhoneGroups {
			run.groups[run.n] = g
		}
		run.n++
		run.end = k
		j = k
		if j >= len(s) {
			return
		}
		switch c := s[j]; {
		case (c == ' ' || c == '-' || c == '.') &&
			(isDigit(byteAt(s, j+1)) || byteAt(s, j+1) == '(' && isDigit(byteAt(s, j+2))):
			sep = c
			j++
		case g.paren && isDigit(c), c == '(' && isDigit(byteAt(s, j+1)):
			sep = 0
		default:
			return
		}
	}
}

// validPhoneRun validates run, or failing that its longest prefix that
// ends before a space-separated group, and returns the end of the number.
func validPhoneRun(s string, run *phoneRun) (int, bool) {
	if run.n > maxPhoneGroups {
		return 0, false
	}
	for n := run.n; n > 0; n-- {
		end := run.groups[n-1].stop
		if n == run.n && numericRight(s, end) {
			return 0, false
		}
		if validPhone(s, run.plus, run.groups[:n]) {
			return end, true
		}
		if run.groups[n-1].sep != ' ' {
			return 0, false
		}
	}
	return 0, false
}

// validPhone checks digit groups against the accepted dialing formats.
func validPhone(s string, plus bool, g []phoneGroup) bool {
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
func validNANPPhone(s string, g []phoneGroup) bool {
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
func validNationalPhone(s string, g []phoneGroup, digits int) bool {
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

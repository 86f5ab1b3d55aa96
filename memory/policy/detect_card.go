package policy

// cardTiles says how card numbers sit in a run of digit groups: 13 to 19
// digits in at most five groups (4-4-4-4-3), after other numbers too.
var cardTiles = tileSpec{minDigits: 13, maxDigits: 19, maxGroups: 5, fillerThenValue: true, valid: validCardGroups}

// findCreditCards finds payment card numbers: 13 to 19 digits, either
// unseparated or grouped by single spaces, dashes or dots the way cards
// are printed (4-4-4-4, 4-4-4-4-3, Amex 4-6-5, Diners 4-6-4), with a known
// issuer prefix valid for that length and a correct Luhn check digit.
// Numbers glued to words or other numeric structures are rejected, unless
// what they are glued to is another card: several cards in a row are all
// found, whatever separates them, nothing included (see tileRun).
func findCreditCards(s string, dst []match) []match {
	var (
		t      runTiler
		groups []digitGroup
	)
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		// Read the run: digit groups joined by single separators.
		groups = groups[:0]
		var sep byte
		j := i
		for {
			k := j
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			groups = append(groups, digitGroup{start: j, end: k, sep: sep})
			j = k
			if c := byteAt(s, j); isRunJoiner(c) && isDigit(byteAt(s, j+1)) {
				sep = c
				j++
				continue
			}
			break
		}
		if j-i >= cardTiles.minDigits {
			dst = t.tileRun(s, groups, i, numericLeft(s, i), numericRight(s, j), &cardTiles, dst)
		}
		i = j - 1
	}
	return dst
}

// validCardGroups checks the separators, grouping, issuer prefix, length
// and Luhn digit of a candidate.
func validCardGroups(s string, g []digitGroup, _ bool) bool {
	total := 0
	for k, x := range g {
		total += x.end - x.start
		if k > 0 && x.sep != ' ' && x.sep != '-' && x.sep != '.' {
			return false
		}
	}
	if total < 13 || total > 19 {
		return false
	}
	if len(g) > 1 && !validCardGrouping(g) {
		return false
	}
	var buf [19]byte
	d := buf[:0]
	for _, x := range g {
		d = append(d, s[x.start:x.end]...)
	}
	return validCardIIN(d) && luhnValid(d)
}

// validCardGrouping accepts printed groupings: fours with a shorter last
// group, or the 4-6-5 / 4-6-4 layouts of Amex and Diners cards.
func validCardGrouping(g []digitGroup) bool {
	l := func(k int) int { return g[k].end - g[k].start }
	if len(g) == 3 && l(0) == 4 && l(1) == 6 && (l(2) == 5 || l(2) == 4) {
		return true
	}
	for k := range g {
		if k < len(g)-1 && l(k) != 4 {
			return false
		}
	}
	return l(len(g)-1) >= 1 && l(len(g)-1) <= 4
}

// validCardIIN reports whether the issuer identification number (leading
// digits) of d belongs to a major card network that issues numbers of
// length len(d).
func validCardIIN(d []byte) bool {
	n := len(d)
	num := func(k int) int {
		v := 0
		for _, c := range d[:k] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	p2, p3, p4 := num(2), num(3), num(4)
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65: // Discover
		return n >= 16 && n <= 19
	case p2 == 62: // UnionPay
		return n >= 16 && n <= 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16 && n <= 19
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return n >= 14 && n <= 19
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16 && n <= 19
	case p4 == 5018, p4 == 5020, p4 == 5038, p4 == 5893, p4 == 6304,
		p4 == 6759, p4 == 6761, p4 == 6762, p4 == 6763: // Maestro
		return n >= 13 && n <= 19
	}
	return false
}

// luhnValid reports whether the ASCII digits d pass the Luhn checksum.
func luhnValid(d []byte) bool {
	sum, double := 0, false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

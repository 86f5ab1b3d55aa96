package policy

// maxCardGroups bounds the digit groups of one card candidate.
const maxCardGroups = 8

// findCreditCards finds payment card numbers: 13 to 19 digits, either
// unseparated or grouped by single spaces, dashes or dots the way cards
// are printed (4-4-4-4, 4-4-4-4-3, Amex 4-6-5, Diners 4-6-4), with a known
// issuer prefix valid for that length and a correct Luhn check digit.
// Numbers glued to words or other numeric structures are rejected.
func findCreditCards(s string, dst []match) []match {
	var (
		groups [maxCardGroups][2]int
		digits [19]byte
	)
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		// Read the run: digit groups joined by single ' ', '-' or '.'.
		n, j := 0, i
		var sep byte
		consistent := true // one kind of separator throughout
		for {
			k := j
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			if n < maxCardGroups {
				groups[n] = [2]int{j, k}
			}
			n++
			j = k
			if c := byteAt(s, j); (c == ' ' || c == '-' || c == '.') && isDigit(byteAt(s, j+1)) {
				if sep == 0 {
					sep = c
				} else if c != sep {
					consistent = false
				}
				j++
				continue
			}
			break
		}
		end := j
		if !consistent {
			sep = 0 // mixed separators: the whole run or nothing
		}
		if !numericLeft(s, i) && n <= maxCardGroups {
			if a, b, ok := findCardInRun(s, groups[:n], sep, digits[:0]); ok {
				dst = append(dst, match{a, b})
			}
		}
		i = end - 1
	}
	return dst
}

// findCardInRun finds the longest valid card number in a run of digit
// groups: the whole run, or, when groups are separated by spaces, a
// sub-run of whole groups ("Visa 13 4222222222222", "4111 1111 1111 1111
// 2024").
func findCardInRun(s string, g [][2]int, sep byte, buf []byte) (start, end int, ok bool) {
	n := len(g)
	if numericRight(s, g[n-1][1]) {
		return 0, 0, false
	}
	if validCardGroups(s, g, buf) {
		return g[0][0], g[n-1][1], true
	}
	if sep != ' ' {
		return 0, 0, false
	}
	for size := n - 1; size > 0; size-- {
		for a := 0; a+size <= n; a++ {
			if validCardGroups(s, g[a:a+size], buf) {
				return g[a][0], g[a+size-1][1], true
			}
		}
	}
	return 0, 0, false
}

// validCardGroups checks the grouping, issuer prefix, length and Luhn
// digit of a candidate; buf is scratch space of capacity 19.
func validCardGroups(s string, g [][2]int, buf []byte) bool {
	total := 0
	for _, x := range g {
		total += x[1] - x[0]
	}
	if total < 13 || total > 19 {
		return false
	}
	if len(g) > 1 && !validCardGrouping(g) {
		return false
	}
	for _, x := range g {
		buf = append(buf, s[x[0]:x[1]]...)
	}
	return validCardIIN(buf) && luhnValid(buf)
}

// validCardGrouping accepts printed groupings: fours with a shorter last
// group, or the 4-6-5 / 4-6-4 layouts of Amex and Diners cards.
func validCardGrouping(g [][2]int) bool {
	l := func(k int) int { return g[k][1] - g[k][0] }
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

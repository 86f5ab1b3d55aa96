package policy

import "strings"

// findEmails finds e-mail addresses: a dot-atom local part of common
// characters, '@' (with at most one space on either side, "bob @
// example.org"), and a domain of at least two DNS labels whose last label
// (the TLD) is 2 to 24 letters. File-name look-alikes such as
// "icon@2x.png" are rejected.
func findEmails(s string, dst []match) []match {
	from, floor := 0, 0 // floor: end of the last match
	for {
		k := strings.IndexByte(s[from:], '@')
		if k < 0 {
			return dst
		}
		at := from + k
		from = at + 1
		spaceBefore := byteAt(s, at-1) == ' ' && at-1 > floor
		spaceAfter := byteAt(s, at+1) == ' '
		domainStart := at + 1
		if spaceAfter {
			domainStart++
		}
		if spaceBefore {
			at-- // from here on, at is the end of the local part
		}
		// Local part: walk left over allowed characters.
		start := at
		for start > floor && isEmailLocal(s[start-1]) {
			start--
		}
		for start < at && !isAlnum(s[start]) && s[start] != '_' {
			start++ // no leading dot, quote or sign
		}
		if start == at || s[at-1] == '.' || byteAt(s, start-1) == '@' || isWordByte(byteAt(s, start-1)) && start > floor {
			continue
		}
		if strings.Contains(s[start:at], "..") {
			continue
		}
		if spaceBefore && !spaceAfter && isPlainWord(s[start:at]) {
			continue // "and @bar.com": a word and a mention
		}
		end, ok := emailDomainEnd(s, domainStart)
		if !ok {
			continue
		}
		dst = append(dst, match{start, end})
		from, floor = end, end
	}
}

// isPlainWord reports whether t is letters only.
func isPlainWord(t string) bool {
	for k := 0; k < len(t); k++ {
		if !isAlpha(t[k]) {
			return false
		}
	}
	return true
}

func isEmailLocal(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '.', '_', '%', '+', '-', '\'':
		return true
	}
	return false
}

// emailDomainEnd parses a domain starting at i and returns its end. Labels
// are 1 to 63 letters, digits and inner hyphens, separated by single dots;
// a trailing dot (end of sentence) is not part of the domain.
func emailDomainEnd(s string, i int) (int, bool) {
	labels := 0
	lastStart, end := i, i
	for j := i; ; {
		k := j
		for k < len(s) && (isAlnum(s[k]) || s[k] == '-') {
			k++
		}
		if k == j || k-j > 63 || s[j] == '-' || s[k-1] == '-' {
			break
		}
		labels++
		lastStart, end = j, k
		if k+1 < len(s) && s[k] == '.' && isAlnum(s[k+1]) {
			j = k + 1
			continue
		}
		break
	}
	if labels < 2 {
		return 0, false
	}
	// The domain must not run on into a word (e.g. non-ASCII letters).
	if c := byteAt(s, end); c >= 0x80 || c == '_' || c == '@' {
		return 0, false
	}
	tld := s[lastStart:end]
	if len(tld) < 2 || len(tld) > 24 {
		return 0, false
	}
	upper, lower := false, false
	for k := 0; k < len(tld); k++ {
		if !isAlpha(tld[k]) {
			return 0, false
		}
		upper = upper || isUpper(tld[k])
		lower = lower || isLower(tld[k])
	}
	if upper && lower {
		return 0, false // "m.Path@m.Version": field access, not a domain
	}
	if isFileExtension(strings.ToLower(tld)) {
		return 0, false
	}
	return end, true
}

// isFileExtension reports whether ext is a common file extension that is
// not a top-level domain, so that names such as "logo@2x.png" are not taken
// for e-mail addresses.
func isFileExtension(ext string) bool {
	switch ext {
	case "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff",
		"css", "js", "ts", "json", "txt", "pdf", "html", "htm", "yaml", "yml", "toml":
		return true
	}
	return false
}

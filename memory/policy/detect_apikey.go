package policy

import (
	"math"
	"sort"
	"strings"
)

// Thresholds of the high-entropy token heuristic of findAPIKeys.
const (
	// minEntropyTokenLen is the shortest token judged by entropy alone.
	minEntropyTokenLen = 24
	// minTokenEntropy is the least Shannon entropy, in bits per character,
	// of a token judged by entropy alone. Random base62/base64 strings of
	// 24 or more characters score about 4.1 or more; identifiers, words
	// and paths of that length mostly score below 3.9.
	minTokenEntropy = 3.9
	// minClassSwitchRate is the least fraction of adjacent character pairs
	// that switch class (upper, lower, digit, symbol). Random strings
	// switch about 60% of the time; CamelCase identifiers about 30%.
	minClassSwitchRate = 0.4
	// maxEnglishBigramRate is the largest fraction of adjacent character
	// pairs that may be common English bigrams (see englishBigrams).
	// Random base62 strings of 24 characters exceed 0.3 about once in a
	// thousand; identifiers made of words ("RoundToEvenScaledFloat64x2")
	// score 0.4 to 0.7.
	maxEnglishBigramRate = 0.3
)

// englishBigrams lists the 150 most frequent letter pairs of English text,
// separated by spaces.
const englishBigrams = "th he in er an re on at en nd ti es or te of ed is it al ar " +
	"st to nt ng se ha as ou io le ve co me de hi ri ro ic ne ea " +
	"ra ce li ch ll be ma si om ur ca el ta la ns di fo ho pe ec " +
	"pr no ct us ac ot il tr ly nc et ut ss so rs un lo wa ge ie " +
	"wh ee wi em ad ol rt po we na ul ni ts mo ow pa im mi ai sh " +
	"ir su id os iv ia am fi ci vi pl ig tu ev ld ry mp fe bl ab " +
	"gh ty op wo sa ay ex ke fr oo av ag if ap gr od bo sp rd do " +
	"uc bu ei ov by rm ep tt oc fa "

// englishBigramTable holds englishBigrams as a 26×26 table: byte
// 26*(a-'a')+(b-'a') is '1' when the pair ab is listed.
const englishBigramTable = "0111001010011101011101001000001000000100100000100010" +
	"1000100110000010000100000000001000100000100000000000" +
	"1011100010011101011101010010001000100000100100000000" +
	"0000100100000000010000000010001000100000100000000000" +
	"1011111000011110011101000000000000000000000000000000" +
	"0000100000000000000000000010011000100100100000000010" +
	"1000100010000011000000000010111010100000100011000000" +
	"0011010000011111011111100010001000000100100100000000" +
	"0000000000000000000000000010011000100010100011000010" +
	"1000100110000011001110000010001001100000100111100010" +
	"0010000000010100011100000000001000100000000000000000" +
	"1000100110000010000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000"

// findAPIKeys finds secrets: tokens with the well-known prefixes of API
// keys and access tokens (OpenAI "sk-", "sk-proj-", Anthropic "sk-ant-",
// Stripe "sk_live_", GitHub "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
// "github_pat_", Slack "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", AWS
// "AKIA"/"ASIA" key ids, Google "AIza", GitLab "glpat-", Hugging Face
// "hf_", npm "npm_"), JSON Web Tokens ("eyJ…" in three dot-separated
// segments), the token after "Bearer ", and any other token of at least 24
// characters of base64/base62 alphabet mixing upper case, lower case and
// digits whose Shannon entropy and class-switch rate look random.
func findAPIKeys(s string, dst []match) []match {
	first := len(dst)
	for i := 0; i < len(s); {
		if !isTokenByte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isTokenByte(s[j]) {
			j++
		}
		// Known prefixes, at the start of the run, after a '/' or '+', or
		// right after another prefixed secret (glued, or after a '-').
		if !isWordByte(byteAt(s, i-1)) {
			last := -1 // end of the last prefixed secret of the run
			for k := i; k < j; k++ {
				if k > i && s[k-1] != '/' && s[k-1] != '+' && k != last && !(k == last+1 && s[k-1] == '-') {
					continue
				}
				if !mayStartPrefixedSecret(s[k]) {
					continue
				}
				if end := prefixedSecretEnd(s, k); end > 0 {
					dst = append(dst, match{k, end})
					last = end
				}
			}
			if end := jwtEnd(s, i); end > 0 && byteAt(s, i-1) != '.' {
				dst = append(dst, match{i, end})
			}
			if start, end := bearerToken(s, i, j); end > 0 {
				dst = append(dst, match{start, end})
			}
		}
		// Padding belongs to a base64 token.
		end := j
		for n := 0; n < 2 && byteAt(s, end) == '='; n++ {
			end++
		}
		if j-i >= minEntropyTokenLen && !isWordByte(byteAt(s, i-1)) {
			if isPathLike(s[i:j]) {
				// Judge each path segment on its own.
				for a := i; a < j; {
					b := a
					for b < j && s[b] != '/' {
						b++
					}
					if b-a >= minEntropyTokenLen && looksRandom(s[a:b]) {
						dst = append(dst, match{a, b})
					}
					a = b + 1
				}
			} else if looksRandom(s[i:j]) {
				dst = append(dst, match{i, end})
			}
		}
		i = j
	}
	return mergeMatches(dst, first)
}

// isTokenByte reports whether c belongs to base64 or base64url tokens.
func isTokenByte(c byte) bool {
	return isAlnum(c) || c == '_' || c == '-' || c == '+' || c == '/'
}

// secretBodyEnd returns the end of the run starting at i of bytes that
// satisfy ok.
func secretBodyEnd(s string, i int, ok func(byte) bool) int {
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

func isBase62(c byte) bool    { return isAlnum(c) }
func isBase64URL(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }
func isWordChar(c byte) bool  { return isAlnum(c) || c == '_' }
func isDashed62(c byte) bool  { return isAlnum(c) || c == '-' }
func isUpperNum(c byte) bool  { return isUpper(c) || isDigit(c) }

// mayStartPrefixedSecret reports whether c is the first byte of a known
// secret prefix (see prefixedSecretBodyEnd): most tokens are rejected
// without a call.
func mayStartPrefixedSecret(c byte) bool {
	switch c {
	case 's', 'r', 'g', 'x', 'A', 'h', 'n':
		return true
	}
	return false
}

// prefixedSecretEnd returns the end of a secret with a known prefix that
// starts at s[i], or 0. The secret must not run on into a word, unless
// that word is another prefixed secret ("AKIA…AKIA…": fixed-length keys
// written back to back).
func prefixedSecretEnd(s string, i int) int {
	end := prefixedSecretBodyEnd(s, i)
	if end > 0 && isWordByte(byteAt(s, end)) && prefixedSecretBodyEnd(s, end) == 0 {
		return 0
	}
	return end
}

// prefixedSecretBodyEnd returns the end of a secret with a known prefix
// that starts at s[i], or 0, whatever follows it.
func prefixedSecretBodyEnd(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	rest := s[i:]
	var (
		body      func(byte) bool
		prefix    int
		minBody   int
		exact     int // exact body length, when fixed
		needMixed bool
	)
	switch rest[0] {
	case 's':
		switch {
		case strings.HasPrefix(rest, "sk-"):
			body, prefix, minBody, needMixed = isBase64URL, 3, 20, true
		case strings.HasPrefix(rest, "sk_live_"), strings.HasPrefix(rest, "sk_test_"):
			body, prefix, minBody = isBase62, 8, 16
		default:
			return 0
		}
	case 'r':
		if !strings.HasPrefix(rest, "rk_live_") && !strings.HasPrefix(rest, "rk_test_") {
			return 0
		}
		body, prefix, minBody = isBase62, 8, 16
	case 'g':
		switch {
		case len(rest) > 4 && rest[0:2] == "gh" && strings.IndexByte("pousr", rest[2]) >= 0 && rest[3] == '_':
			body, prefix, minBody = isBase62, 4, 30
		case strings.HasPrefix(rest, "github_pat_"):
			body, prefix, minBody = isWordChar, 11, 22
		case strings.HasPrefix(rest, "glpat-"):
			body, prefix, minBody = isBase64URL, 6, 20
		default:
			return 0
		}
	case 'x':
		if len(rest) < 5 || rest[:3] != "xox" || strings.IndexByte("bpars", rest[3]) < 0 || rest[4] != '-' {
			return 0
		}
		body, prefix, minBody = isDashed62, 5, 10
	case 'A':
		switch {
		case strings.HasPrefix(rest, "AKIA"), strings.HasPrefix(rest, "ASIA"):
			body, prefix, exact = isUpperNum, 4, 16
		case strings.HasPrefix(rest, "AIza"):
			body, prefix, exact = isBase64URL, 4, 35
		default:
			return 0
		}
	case 'h':
		if !strings.HasPrefix(rest, "hf_") {
			return 0
		}
		body, prefix, minBody = isBase62, 3, 30
	case 'n':
		if !strings.HasPrefix(rest, "npm_") {
			return 0
		}
		body, prefix, exact = isBase62, 4, 36
	default:
		return 0
	}
	var end int
	if exact > 0 {
		// What runs on is judged by the caller; the body is not read past
		// its length, so that keys back to back are read in linear time.
		end = secretBodyEnd(s[:min(len(s), i+prefix+exact)], i+prefix, body)
	} else {
		end = secretBodyEnd(s, i+prefix, body)
	}
	n := end - (i + prefix)
	if exact > 0 && n != exact || n < minBody {
		return 0
	}
	if needMixed && !hasMixedClasses(s[i+prefix:end]) {
		return 0
	}
	return end
}

// hasMixedClasses reports whether t holds an upper-case letter, a
// lower-case letter and a digit.
func hasMixedClasses(t string) bool {
	var up, low, dig bool
	for k := 0; k < len(t); k++ {
		c := t[k]
		up = up || isUpper(c)
		low = low || isLower(c)
		dig = dig || isDigit(c)
	}
	return up && low && dig
}

// jwtEnd returns the end of a JSON Web Token starting at s[i], or 0: a
// base64url header starting "eyJ" (`{"`) and a payload of at least ten
// characters each, and a signature that may be empty.
func jwtEnd(s string, i int) int {
	if !strings.HasPrefix(s[i:], "eyJ") {
		return 0
	}
	j := secretBodyEnd(s, i, isBase64URL)
	if j-i < 10 || byteAt(s, j) != '.' {
		return 0
	}
	k := secretBodyEnd(s, j+1, isBase64URL)
	if k-(j+1) < 10 || byteAt(s, k) != '.' {
		return 0
	}
	end := secretBodyEnd(s, k+1, isBase64URL)
	if isWordByte(byteAt(s, end)) || byteAt(s, end) == '.' && isBase64URL(byteAt(s, end+1)) {
		return 0
	}
	return end
}

// bearerToken returns the token following the word "Bearer" (any case)
// that spans s[i:j], or end 0: at least 16 characters of the RFC 6750
// token alphabet holding a letter and a digit.
func bearerToken(s string, i, j int) (start, end int) {
	if j-i != 6 || !strings.EqualFold(s[i:j], "bearer") {
		return 0, 0
	}
	start = j
	for byteAt(s, start) == ' ' {
		start++
	}
	if start == j {
		return 0, 0
	}
	end = start
	var letter, digit bool
	for end < len(s) {
		c := s[end]
		if !isTokenByte(c) && c != '.' && c != '~' && c != '=' {
			break
		}
		letter = letter || isAlpha(c)
		digit = digit || isDigit(c)
		end++
	}
	if end-start < 16 || !letter || !digit {
		return 0, 0
	}
	return start, end
}

// looksRandom reports whether a token of at least minEntropyTokenLen
// characters looks like random key material: at least two each of upper-
// and lower-case letters and a digit, '+' or '/', a Shannon entropy of at least
// minTokenEntropy bits per character, and a class-switch rate of at least
// minClassSwitchRate.
func looksRandom(t string) bool {
	var up, low, other, switches int
	prev := -1
	for k := 0; k < len(t); k++ {
		c := t[k]
		class := 3
		switch {
		case isUpper(c):
			up++
			class = 0
		case isLower(c):
			low++
			class = 1
		case isDigit(c):
			other++
			class = 2
		case c == '+' || c == '/':
			other++
		}
		if prev >= 0 && class != prev {
			switches++
		}
		prev = class
	}
	if up < 2 || low < 2 || other < 1 {
		return false
	}
	if float64(switches) < minClassSwitchRate*float64(len(t)-1) {
		return false
	}
	if float64(englishBigramCount(t)) > maxEnglishBigramRate*float64(len(t)-1) {
		return false
	}
	return shannonEntropy(t) >= minTokenEntropy
}

// englishBigramCount counts the adjacent pairs of t that are common
// English bigrams, the second letter in lower case ("Th" and "th" count,
// "TH" does not).
func englishBigramCount(t string) int {
	n := 0
	for k := 0; k+1 < len(t); k++ {
		a, b := t[k], t[k+1]
		if !isAlpha(a) || !isLower(b) {
			continue
		}
		if englishBigramTable[26*int((a|0x20)-'a')+int(b-'a')] == '1' {
			n++
		}
	}
	return n
}

// isPathLike reports whether t is a slash-separated path with at least one
// segment that is a lower-case word of three or more letters ("com",
// "blob"), rather than base64 that happens to hold a '/'.
func isPathLike(t string) bool {
	if strings.IndexByte(t, '/') < 0 {
		return false
	}
	for seg := range strings.SplitSeq(t, "/") {
		if len(seg) < 3 {
			continue
		}
		word := true
		for k := 0; k < len(seg) && word; k++ {
			word = isLower(seg[k])
		}
		if word {
			return true
		}
	}
	return false
}

// shannonEntropy returns the Shannon entropy of the byte distribution of
// t, in bits per byte.
func shannonEntropy(t string) float64 {
	if t == "" {
		return 0
	}
	var counts [256]int32
	for k := 0; k < len(t); k++ {
		counts[t[k]]++
	}
	n := float64(len(t))
	h := 0.0
	for k := 0; k < len(t); k++ {
		if c := counts[t[k]]; c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
			counts[t[k]] = 0 // count each byte value once
		}
	}
	return h
}

// mergeMatches sorts dst[first:] and merges overlapping matches.
func mergeMatches(dst []match, first int) []match {
	ms := dst[first:]
	if len(ms) < 2 {
		return dst
	}
	sort.Slice(ms, func(a, b int) bool {
		if ms[a].start != ms[b].start {
			return ms[a].start < ms[b].start
		}
		return ms[a].end > ms[b].end
	})
	out := ms[:1]
	for _, m := range ms[1:] {
		last := &out[len(out)-1]
		if m.start < last.end {
			last.end = max(last.end, m.end)
			continue
		}
		out = append(out, m)
	}
	return dst[:first+len(out)]
}

package fakellama

import (
	"hash/fnv"
	"strings"
	"unicode/utf8"
)

// Vocabulary layout of the fake tokenizer. Text pieces get ids in
// [0, VocabSize); the special tokens sit just above.
const (
	// VocabSize is the number of ids text pieces are hashed into.
	VocabSize = 50000
	// TokenImStart is the id of the ChatML "<|im_start|>" special token.
	TokenImStart = VocabSize
	// TokenImEnd is the id of the ChatML "<|im_end|>" special token (also
	// the end-of-generation token).
	TokenImEnd = VocabSize + 1
	// TokenMedia is the id of the first token of an image.
	TokenMedia = VocabSize + 2
	// TokenMediaPad is the id of the other ImageTokens-1 tokens of an image.
	TokenMediaPad = VocabSize + 3
	// NVocab is the total vocabulary size, reported by /v1/models.
	NVocab = VocabSize + 4
)

// Special markers recognised in text when special parsing is on (the
// default, as llama.cpp's /tokenize parse_special defaults to true).
const (
	// ImStart opens a ChatML turn; one token.
	ImStart = "<|im_start|>"
	// ImEnd closes a ChatML turn; one token.
	ImEnd = "<|im_end|>"
	// MediaMarker stands for one image in a rendered prompt (llama.cpp's
	// default media marker); it costs ImageTokens tokens.
	MediaMarker = "<__media__>"
	// ImageTokens is the fixed token cost of one image.
	ImageTokens = 64
)

var specials = [...]string{ImStart, ImEnd, MediaMarker}

// isSpace is Go regexp's (RE2) \s: ASCII tab, newline, form feed, carriage
// return and space. Vertical tab and Unicode spaces are symbols.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\f' || b == '\r'
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// pieceRegexp is the regular expression the hand-written scanner implements
// (leftmost-first, as Go's regexp). Tests check the two agree.
const pieceRegexp = `\s?[A-Za-z]{1,4}|\s?[0-9]|\s?[^\sA-Za-z0-9]|\s+`

// nextPiece returns the byte length of the first piece of the non-empty s,
// per pieceRegexp.
func nextPiece(s string) int {
	i := 0
	if isSpace(s[0]) {
		if len(s) == 1 || isSpace(s[1]) {
			j := 1
			for j < len(s) && isSpace(s[j]) {
				j++
			}
			return j
		}
		i = 1 // one leading space merges into the next piece
	}
	c := s[i]
	switch {
	case isLetter(c):
		j := i + 1
		for j < len(s) && j < i+4 && isLetter(s[j]) {
			j++
		}
		return j
	case isDigit(c):
		return i + 1
	default:
		_, n := utf8.DecodeRuneInString(s[i:])
		return i + n
	}
}

// specialFinder finds special markers in a string left to right in linear
// time: it remembers, for every marker, where it next occurs.
type specialFinder struct {
	s    string
	next [len(specials)]int // absolute offset of the next occurrence, or -1
}

func newSpecialFinder(s string) *specialFinder {
	f := &specialFinder{s: s}
	for k, sp := range specials {
		f.next[k] = strings.Index(s, sp)
	}
	return f
}

// find returns the earliest marker at or after offset from (its index in
// specials and absolute offset), or -1, -1.
func (f *specialFinder) find(from int) (which, at int) {
	which, at = -1, -1
	for k, sp := range specials {
		if f.next[k] >= 0 && f.next[k] < from {
			if i := strings.Index(f.s[from:], sp); i >= 0 {
				f.next[k] = from + i
			} else {
				f.next[k] = -1
			}
		}
		if f.next[k] >= 0 && (at < 0 || f.next[k] < at) {
			which, at = k, f.next[k]
		}
	}
	return which, at
}

// scan calls fn for every token of s in order: the piece of text it covers
// and its id. With special set, the markers ImStart, ImEnd and MediaMarker
// are split off first (as llama.cpp's tokenizer partitions text around
// special tokens) and the rest is cut into pieces by pieceRegexp. An image
// yields one TokenMedia whose piece is MediaMarker, then ImageTokens-1
// TokenMediaPad tokens with empty pieces, so the pieces always concatenate
// back to s.
func scan(s string, special bool, fn func(piece string, id int)) {
	var finder *specialFinder
	if special {
		finder = newSpecialFinder(s)
	}
	pos := 0
	for pos < len(s) {
		end, which := len(s), -1
		if finder != nil {
			if w, at := finder.find(pos); w >= 0 {
				end, which = at, w
			}
		}
		for text := s[pos:end]; len(text) > 0; {
			n := nextPiece(text)
			fn(text[:n], PieceID(text[:n]))
			text = text[n:]
		}
		if which < 0 {
			return
		}
		switch specials[which] {
		case ImStart:
			fn(ImStart, TokenImStart)
		case ImEnd:
			fn(ImEnd, TokenImEnd)
		case MediaMarker:
			fn(MediaMarker, TokenMedia)
			for range ImageTokens - 1 {
				fn("", TokenMediaPad)
			}
		}
		pos = end + len(specials[which])
	}
}

// PieceID is the id of a text piece: a stable FNV-1a hash of its bytes
// modulo VocabSize. Different pieces may share an id.
func PieceID(piece string) int {
	h := fnv.New32a()
	h.Write([]byte(piece))
	return int(h.Sum32() % VocabSize)
}

// Tokenize returns the token ids of s under the fixture's deliberately
// simple tokenizer, with special markers parsed:
//
//   - ImStart and ImEnd are one token each, MediaMarker is ImageTokens
//     tokens;
//   - the rest is cut into pieces by the regular expression
//     `\s?[A-Za-z]{1,4}|\s?[0-9]|\s?[^\sA-Za-z0-9]|\s+`: ASCII letter runs in
//     chunks of at most 4, one token per digit, one per other rune (every
//     non-ASCII rune, every invalid byte), a single leading whitespace byte
//     merged into the piece after it, and any other whitespace run one token.
//
// No BOS/EOS token is ever added. The result is deterministic and
// independent of any server.
func Tokenize(s string) []int {
	var ids []int
	scan(s, true, func(_ string, id int) { ids = append(ids, id) })
	return ids
}

// TokenizeText is Tokenize without special parsing: marker strings are
// ordinary text (llama.cpp's /tokenize with "parse_special": false).
func TokenizeText(s string) []int {
	var ids []int
	scan(s, false, func(_ string, id int) { ids = append(ids, id) })
	return ids
}

// CountTokens returns len(Tokenize(s)) without building the slice.
func CountTokens(s string) int {
	n := 0
	scan(s, true, func(string, int) { n++ })
	return n
}

// Pieces returns the text each token of Tokenize(s) stands for, one entry
// per token; the entries concatenate back to s.
func Pieces(s string) []string {
	var ps []string
	scan(s, true, func(p string, _ int) { ps = append(ps, p) })
	return ps
}

package memory

import (
	"unicode/utf8"

	"github.com/megacontext/megacontext/tokens"
)

// splitBlocks cuts text into consecutive pieces of at most k estimated
// tokens, at the end of a sentence when one falls past the first fifth of
// the piece (so that a statement and its value stay together: a short
// opening sentence is better alone than the next one cut in two), else at
// whitespace, else inside a word. The pieces concatenate back to text
// exactly. The estimate overcounts real tokenizers, so pieces hold at most
// k real tokens in practice.
func splitBlocks(text string, k int) []string {
	if text == "" {
		return nil
	}
	est := tokens.Estimate{}
	var out []string
	start := 0
	for start < len(text) {
		end, sentence := start, -1
		for end < len(text) {
			next := nextWordEnd(text, end)
			if est.Count(text[start:next]) > k {
				break
			}
			end = next
			if endsSentence(text, end) {
				sentence = end
			}
		}
		switch {
		case end == len(text):
		case end == start:
			// One word longer than k tokens: cut it by runes.
			for end < len(text) {
				_, size := utf8.DecodeRuneInString(text[end:])
				if est.Count(text[start:end+size]) > k && end > start {
					break
				}
				end += size
			}
		case sentence > start && sentence-start >= (end-start)/5:
			end = sentence
		}
		out = append(out, text[start:end])
		start = end
	}
	return out
}

// endsSentence reports whether the word ending at i closes a sentence.
func endsSentence(s string, i int) bool {
	if i == 0 {
		return false
	}
	switch s[i-1] {
	case '.', '!', '?', ':', ';':
		return true
	}
	return i < len(s) && s[i] == '\n'
}

// nextWordEnd returns the end of the whitespace run plus the word after i.
func nextWordEnd(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// keepSpansWhole merges adjacent pieces wherever a cut falls strictly inside
// one of spans (sorted byte ranges of the whole text), so that no tagged
// span is ever split across blocks.
func keepSpansWhole(pieces []string, spans [][2]int) []string {
	if len(spans) == 0 || len(pieces) < 2 {
		return pieces
	}
	out := []string{pieces[0]}
	pos := len(pieces[0])
	for _, p := range pieces[1:] {
		inside := false
		for _, sp := range spans {
			if sp[0] < pos && pos < sp[1] {
				inside = true
				break
			}
		}
		if inside {
			out[len(out)-1] += p
		} else {
			out = append(out, p)
		}
		pos += len(p)
	}
	return out
}

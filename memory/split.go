package memory

import (
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/tokens"
)

// splitBlocks cuts text into consecutive pieces of at most k estimated
// tokens, at whitespace where possible. The pieces concatenate back to
// text exactly. The estimate overcounts real tokenizers, so pieces hold at
// most k real tokens in practice.
func splitBlocks(text string, k int) []string {
	if text == "" {
		return nil
	}
	est := tokens.Estimate{}
	var out []string
	start := 0
	for start < len(text) {
		// Grow word by word (a word = optional leading whitespace + non-space run).
		end := start
		for end < len(text) {
			next := nextWordEnd(text, end)
			if est.Count(text[start:next]) > k {
				break
			}
			end = next
		}
		if end == start {
			// One word longer than k tokens: cut it by runes.
			end = start
			for end < len(text) {
				_, size := utf8.DecodeRuneInString(text[end:])
				if est.Count(text[start:end+size]) > k && end > start {
					break
				}
				end += size
			}
		}
		out = append(out, text[start:end])
		start = end
	}
	return out
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

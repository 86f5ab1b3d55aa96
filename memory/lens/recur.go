package lens

import "hash/maphash"

// Recurring text. What a person tells once (a fact, a change, a plan) is
// told in words of its own; what recurs verbatim all through a history is
// small talk ("the neighbours are having building work done") or a
// pasted boilerplate, whose words match many questions and answer none.
// The index counts the shingles of each block (runs of shingleLen
// consecutive index terms) over the whole history, so that a block that
// matches a question only inside recurring text can weigh less
// (OnlyRecurring).

// shingleLen is the number of consecutive terms a shingle spans.
const shingleLen = 3

// recurSeed hashes shingles; fixed per process (hashes are never stored).
var recurSeed = maphash.MakeSeed()

// shingles returns the hashes of the shingles of terms (none when terms
// are fewer than shingleLen).
func shingles(terms []string) []uint64 {
	if len(terms) < shingleLen {
		return nil
	}
	out := make([]uint64, 0, len(terms)-shingleLen+1)
	var h maphash.Hash
	h.SetSeed(recurSeed)
	for i := 0; i+shingleLen <= len(terms); i++ {
		h.Reset()
		for _, t := range terms[i : i+shingleLen] {
			h.WriteString(t)
			h.WriteByte(0)
		}
		out = append(out, h.Sum64())
	}
	return out
}

// countShingles adds delta to the counts of hs.
func (x *Index) countShingles(hs []uint64, delta int32) {
	for _, h := range hs {
		n := x.shingleN[h] + delta
		switch {
		case n <= 0:
			if _, ok := x.shingleN[h]; ok {
				delete(x.shingleN, h)
				x.bytes -= shingleBytes
			}
		default:
			if _, ok := x.shingleN[h]; !ok {
				x.bytes += shingleBytes
			}
			x.shingleN[h] = n
		}
	}
}

// shingleBytes is the approximate memory of a counted shingle's map
// entry.
const shingleBytes = 24

// shingleListBytes is the approximate memory of a block's list of
// shingles: its slice header and hashes.
func shingleListBytes(hs []uint64) int64 { return 24 + 8*int64(len(hs)) }

// minRecur is how many times a shingle occurs in a history to be
// recurring.
const minRecur = 3

// OnlyRecurring reports whether every term of block b that match accepts
// lies in recurring text (each shingle that covers it recurs), and at
// least one does: the block matches a question only through the small
// talk it holds, not through what it tells once. text is the block's text
// as indexed.
func (x *Index) OnlyRecurring(b int, text string, match func(term string) bool) bool {
	if b < 0 || b >= len(x.blockShingles) {
		return false
	}
	hs := x.blockShingles[b]
	rec := make([]bool, len(hs))
	any := false
	for i, h := range hs {
		rec[i] = x.shingleN[h] >= minRecur
		any = any || rec[i]
	}
	if !any {
		return false
	}
	terms := Terms(text)
	if len(terms) != len(hs)+shingleLen-1 {
		return false // not the text the block was indexed with
	}
	found := false
	for i, t := range terms {
		if !match(t) {
			continue
		}
		found = true
		for j := max(0, i-shingleLen+1); j <= min(i, len(hs)-1); j++ {
			if !rec[j] {
				return false
			}
		}
	}
	return found
}

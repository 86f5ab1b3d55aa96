package lens

import "hash/maphash"

// Recurring text. What a person tells once (a fact, a change, a plan) is
// told in words of its own; what recurs verbatim all through a history is
// small talk ("the neighbours are having building work done") or a
// pasted boilerplate, whose words match many questions and answer none.
// The index keeps each block's terms as hashes and counts the block's
// shingles (runs of shingleLen consecutive terms) over the whole history,
// so that a block that matches a question only inside recurring text can
// weigh less (OnlyRecurring), without reading its text again.

// shingleLen is the number of consecutive terms a shingle spans.
const shingleLen = 3

// termSeed hashes terms; fixed per process (hashes are never stored).
var termSeed = maphash.MakeSeed()

// TermHash returns the hash the index keeps of an index term (Terms).
func TermHash(term string) uint32 { return uint32(maphash.String(termSeed, term)) }

// termHashes returns the hashes of terms.
func termHashes(terms []string) []uint32 {
	if len(terms) < shingleLen {
		return nil // no shingle: nothing to count or check
	}
	out := make([]uint32, len(terms))
	for i, t := range terms {
		out[i] = TermHash(t)
	}
	return out
}

// shingle returns the key of the shingle that starts at term i of hs.
func shingle(hs []uint32, i int) uint64 {
	const m = 0x9E3779B97F4A7C15
	k := uint64(hs[i])
	for _, h := range hs[i+1 : i+shingleLen] {
		k = (k^uint64(h))*m + 1
	}
	return k
}

// countShingles adds delta to the counts of the shingles of hs.
func (x *Index) countShingles(hs []uint32, delta int32) {
	for i := 0; i+shingleLen <= len(hs); i++ {
		k := shingle(hs, i)
		old, ok := x.shingleN[k]
		if old >= minRecur && old+delta < minRecur {
			x.recurGen++ // what OnlyRecurring learned may no longer hold
		}
		switch n := old + delta; {
		case n <= 0:
			if ok {
				delete(x.shingleN, k)
				x.bytes -= shingleBytes
			}
		default:
			if !ok {
				x.bytes += shingleBytes
			}
			x.shingleN[k] = n
		}
	}
}

// shingleBytes is the approximate memory of a counted shingle's map
// entry.
const shingleBytes = 24

// termListBytes is the approximate memory of a block's list of term
// hashes: its slice header and hashes.
func termListBytes(hs []uint32) int64 { return 24 + 4*int64(len(hs)) }

// OnlyRecurring reports whether every term of block b that match accepts
// (by its TermHash) lies in recurring text (each shingle that covers it
// occurs at least minRecur times in the history), and at least one does:
// the block matches a question only through the small talk it holds, not
// through what it tells once.
func (x *Index) OnlyRecurring(b int, match func(termHash uint32) bool) bool {
	if b < 0 || b >= len(x.blockTerms) {
		return false
	}
	hs := x.blockTerms[b]
	n := len(hs) - shingleLen + 1
	if n <= 0 {
		return false
	}
	known := x.recurKnown(b)
	found := false
	for i, h := range hs {
		if !match(h) {
			continue
		}
		found = true
		if known[i>>6]&(1<<(i&63)) != 0 {
			continue
		}
		for j := max(0, i-shingleLen+1); j <= min(i, n-1); j++ {
			if x.shingleN[shingle(hs, j)] < minRecur {
				return false
			}
		}
		known[i>>6] |= 1 << (i & 63)
	}
	return found
}

// recurKnown returns the bits of block b's terms known to lie in recurring
// text. The questions of a long history check the same blocks of small
// talk again and again, each term against up to three shingle counts:
// what a check found holds while no shingle's count falls below minRecur
// (Add only raises counts; Truncate and Rewrite lower them, and bump
// recurGen when one falls below), so the bits are kept until then.
func (x *Index) recurKnown(b int) []uint64 {
	if n := len(x.blockTerms); len(x.recurAt) < n {
		x.recurAt = append(x.recurAt, make([]uint64, n-len(x.recurAt))...)
		x.recurBits = append(x.recurBits, make([][]uint64, n-len(x.recurBits))...)
	}
	words := (len(x.blockTerms[b]) + 63) / 64
	if x.recurAt[b] != x.recurGen+1 {
		bits := x.recurBits[b][:0]
		x.recurBits[b] = append(bits, make([]uint64, words)...)
		x.recurAt[b] = x.recurGen + 1
	}
	return x.recurBits[b]
}

// forgetRecur drops what OnlyRecurring learned of block blk, whose terms
// are gone (Truncate) or changed (Rewrite).
func (x *Index) forgetRecur(blk int) {
	if blk < len(x.recurAt) {
		x.recurAt[blk] = 0
	}
}

// minRecur is how many times a shingle occurs in a history to be
// recurring.
const minRecur = 3

// MayHold reports whether block b may hold a term that match accepts (by
// its TermHash): false only when it holds none, so that a caller can skip
// reading a block's text for terms it cannot hold; true when it holds one,
// or its hash collides with one, or the index keeps no hashes of the block
// (it has fewer than shingleLen terms).
func (x *Index) MayHold(b int, match func(termHash uint32) bool) bool {
	if b < 0 || b >= len(x.blockTerms) {
		return true
	}
	hs := x.blockTerms[b]
	if hs == nil {
		return true
	}
	for _, h := range hs {
		if match(h) {
			return true
		}
	}
	return false
}

// hashSet is a set of term hashes (TermHash) for OnlyRecurring's match:
// open addressing over a power-of-two table, which a request reads for
// every term of thousands of blocks.
type hashSet struct {
	// slots holds 1<<32 | hash per member, 0 when empty.
	slots []uint64
	// mask is len(slots)-1.
	mask uint32
}

// reset empties the set, sized for n members.
func (h *hashSet) reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if cap(h.slots) >= size {
		h.slots = h.slots[:size]
		clear(h.slots)
	} else {
		h.slots = make([]uint64, size)
	}
	h.mask = uint32(size - 1)
}

// slot returns the index of hash v's slot: its own, or the empty one it
// would take.
func (h *hashSet) slot(v uint32) uint32 {
	want := 1<<32 | uint64(v)
	i := (v * 0x9E3779B1) & h.mask
	for h.slots[i] != 0 && h.slots[i] != want {
		i = (i + 1) & h.mask
	}
	return i
}

// add puts v in the set (at most half the size reset was given).
func (h *hashSet) add(v uint32) { h.slots[h.slot(v)] = 1<<32 | uint64(v) }

// has reports whether v is in the set.
func (h *hashSet) has(v uint32) bool { return h.slots[h.slot(v)] != 0 }

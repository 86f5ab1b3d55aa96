package lens

// Rare terms. A statement of a new value names it (a place, a company, a
// thing bought) in a word that few blocks hold, where small talk repeats
// itself; a gathering question asks, for each of up to a thousand
// candidate blocks, whether it holds such a word (HoldsRare). Reading
// each candidate's text for it again cost about a sixth of such an
// assembly at 512K tokens, so the index keeps, for each block, how many
// of its terms are rare, and updates the counts when a term's document
// frequency crosses RareDF: O(RareDF) blocks per crossing.

// RareDF is the most blocks a rare term occurs in (HoldsRare).
const RareDF = 2

// rareBytes is the memory of a block's count of rare terms.
const rareBytes = 2

// HoldsRare reports whether block b holds a term found in at most RareDF
// blocks of the history; false for a block out of range.
func (x *Index) HoldsRare(b int) bool {
	return b >= 0 && b < len(x.rare) && x.rare[b] > 0
}

// rareCross updates the rare counts of the blocks holding term t after its
// document frequency went from before to after (its postings already
// updated): when it crosses RareDF, every block of its postings but skip
// gains or loses one rare term.
func (x *Index) rareCross(t string, before, after int, skip int32) {
	var d uint16
	switch {
	case before <= RareDF && after > RareDF:
		d = ^uint16(0) // -1
	case before > RareDF && after <= RareDF:
		d = 1
	default:
		return
	}
	for _, p := range x.postings[t] {
		if p.block != skip {
			x.rare[p.block] += d
		}
	}
}

// countRare returns how many of the distinct terms tf holds are rare now.
func (x *Index) countRare(tf map[string]int) uint16 {
	var n uint16
	for t := range tf {
		if len(x.postings[t]) <= RareDF {
			n++
		}
	}
	return n
}

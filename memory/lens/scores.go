package lens

import (
	"slices"
)

// Scores holds block scores in arrays indexed by block, for the request
// path over a long history: a question of common words matches most of
// its blocks, and maps of them cost more than the scoring itself. A block
// holds a score once Add gave it one, even 0 (as a map key would). The
// zero value is empty; Reset reuses one without allocating.
type Scores struct {
	// val is each block's score, hit whether Add gave it one: both as long
	// as the largest Reset asked, zero past the blocks touched.
	val []float64
	hit []bool
	// n is the number of blocks (Reset).
	n int
	// touched lists the blocks holding a score, in the order Add first
	// gave them one (ascending after Sorted).
	touched []int32
}

// Reset empties s for n blocks, clearing only what the last use touched.
func (s *Scores) Reset(n int) {
	for _, b := range s.touched {
		s.val[b], s.hit[b] = 0, false
	}
	s.touched = s.touched[:0]
	if n > len(s.val) {
		s.val = slices.Grow(s.val[:0], n)[:n]
		s.hit = slices.Grow(s.hit[:0], n)[:n]
	}
	s.n = n
}

// Add adds v to block b's score (b in [0, n)).
func (s *Scores) Add(b int, v float64) {
	if !s.hit[b] {
		s.hit[b] = true
		s.touched = append(s.touched, int32(b))
	}
	s.val[b] += v
}

// Has reports whether block b holds a score.
func (s *Scores) Has(b int) bool { return b >= 0 && b < s.n && s.hit[b] }

// Get returns block b's score (0 when it holds none).
func (s *Scores) Get(b int) float64 {
	if b < 0 || b >= s.n {
		return 0
	}
	return s.val[b]
}

// Len returns the number of blocks holding a score.
func (s *Scores) Len() int { return len(s.touched) }

// Sorted returns the blocks holding a score in ascending order (s keeps
// the slice; it is valid until the next Add or Reset).
func (s *Scores) Sorted() []int32 {
	if len(s.touched)*16 >= s.n {
		// Dense: a scan of the marks is cheaper than a sort.
		k := 0
		for b, h := range s.hit[:s.n] {
			if h {
				s.touched[k] = int32(b)
				k++
			}
		}
	} else {
		slices.Sort(s.touched)
	}
	return s.touched
}

// Top returns the n blocks with the highest scores, in no particular
// order, ties (and incomparable NaNs, as cmp.Compare orders them) to the
// higher block: the same blocks as sorting all of them would keep. It
// selects them in place (quickselect: a few passes over the blocks
// holding a score, where a heap of n took log n steps for most of them;
// a question of common words over a long history holds thousands, and
// each assembly takes the top several times); buf, grown to the blocks
// holding a score, is reused.
func (s *Scores) Top(n int, buf []int32) []int32 {
	h := buf[:0]
	if n <= 0 {
		return h
	}
	h = append(h, s.touched...)
	if len(h) <= n {
		return h
	}
	s.selectTop(h, n)
	return h[:n]
}

// below reports whether block x ranks below block y: a lower score
// (cmp.Compare's order: a NaN below any number), or the same and an
// earlier block.
func (s *Scores) below(x, y int32) bool {
	// cmp.Compare's order, the common case first.
	a, b := s.val[x], s.val[y]
	switch {
	case a < b:
		return true
	case a > b:
		return false
	case a == b:
		return x < y
	}
	if an, bn := a != a, b != b; an != bn {
		return an // a NaN ranks below a number
	}
	return x < y
}

// selectTop reorders h (distinct blocks holding a score) so that its
// first n rank above the rest. Blocks are distinct, so below is a strict
// total order and the n are the same whatever the pivots.
func (s *Scores) selectTop(h []int32, n int) {
	lo, hi := 0, len(h)-1
	k := n - 1 // the place of the n-th best, best first
	for round := 0; lo < hi; round++ {
		if round > 64 {
			// Pathological pivots: sort what is left.
			slices.SortFunc(h[lo:hi+1], func(x, y int32) int {
				switch {
				case x == y:
					return 0
				case s.below(y, x):
					return -1
				}
				return 1
			})
			return
		}
		// The median of three as pivot, moved to hi.
		mid := lo + (hi-lo)/2
		if s.below(h[lo], h[mid]) {
			h[lo], h[mid] = h[mid], h[lo]
		}
		if s.below(h[lo], h[hi]) {
			h[lo], h[hi] = h[hi], h[lo]
		}
		if s.below(h[hi], h[mid]) {
			h[mid], h[hi] = h[hi], h[mid]
		}
		// Now h[lo] >= h[hi] >= h[mid]: h[hi] is the median.
		pv := h[hi]
		p := lo
		for i := lo; i < hi; i++ {
			if s.below(pv, h[i]) { // h[i] ranks above the pivot
				h[p], h[i] = h[i], h[p]
				p++
			}
		}
		h[p], h[hi] = h[hi], h[p]
		switch {
		case p == k:
			return
		case k < p:
			hi = p - 1
		default:
			lo = p + 1
		}
	}
}

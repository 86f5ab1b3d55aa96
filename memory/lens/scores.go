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
// higher block: the same blocks as sorting all of them would keep, in
// one pass with a heap of n.
func (s *Scores) Top(n int, buf []int32) []int32 {
	h := buf[:0]
	if n <= 0 {
		return h
	}
	less := func(x, y int32) bool { // x ranks below y
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
	down := func(i int) {
		for {
			m, l, r := i, 2*i+1, 2*i+2
			if l < len(h) && less(h[l], h[m]) {
				m = l
			}
			if r < len(h) && less(h[r], h[m]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	var floor float64 // the weakest kept's score, once h is full
	for _, b := range s.touched {
		if len(h) < n {
			h = append(h, b)
			for i := len(h) - 1; i > 0 && less(h[i], h[(i-1)/2]); i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
			floor = s.val[h[0]]
			continue
		}
		if s.val[b] < floor {
			continue // below the weakest kept (false for NaNs: less decides)
		}
		if less(h[0], b) {
			h[0] = b
			down(0)
			floor = s.val[h[0]]
		}
	}
	return h
}

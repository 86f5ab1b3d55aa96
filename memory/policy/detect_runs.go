package policy

// Card and phone numbers are digit groups joined by separators, and people
// write several of them in a row: "4012 8888 8888 1881 4012 8888 8888
// 1881", "555-234-5678, 555-234-5679", "+44 20 7946 0958,+1 555 234 5678",
// or glued with nothing between. The detectors therefore read a whole run
// of digit groups first and then choose, over the whole run, which
// stretches of it are values (tileRun), rather than taking one candidate
// per run and skipping the rest, which let the second of two adjacent
// values through.

// digitGroup is one group of a run of digit groups: the digits s[start:end].
type digitGroup struct {
	// start and end delimit the group's digits.
	start, end int
	// sep is the separator byte before the group: a space, a dash, a dot,
	// a joiner (see isRunJoiner), or 0 for none (the run's first group, a
	// parenthesized group glued to its neighbour, or the second half of a
	// group split between two values written back to back).
	sep byte
	// paren marks a group written in parentheses, "(555)": '(' is at
	// start-1 and ')' at end.
	paren bool
}

// isRunJoiner reports whether c may join two digit groups of one run
// besides a value's own separators: the bytes that make a number continue
// a numeric structure (see numericLeft), so that a value next to another
// one across them is judged with its neighbour rather than rejected as part
// of a longer number.
func isRunJoiner(c byte) bool {
	switch c {
	case ' ', '-', '.', '/', ':', ',':
		return true
	}
	return false
}

// tileSpec says how a detector's values sit in a run of digit groups.
type tileSpec struct {
	// minDigits and maxDigits bound the digits of one value.
	minDigits, maxDigits int
	// maxGroups bounds the groups of one value.
	maxGroups int
	// fillerThenValue lets a value follow groups that are no value (across
	// a space): "order 2024 4111 1111 1111 1111". Without it, values must
	// start the run, and only groups after them may be left out.
	fillerThenValue bool
	// valid reports whether the groups g are one value; first is set for
	// the value that starts the run (a '+' before the run belongs to it).
	valid func(s string, g []digitGroup, first bool) bool
}

// tileCell is a way of reading a run up to a digit position: the run's
// digits are numbered 0 to the total, and a position is the number of
// digits before it.
type tileCell struct {
	// pos is the digit position reached.
	pos int
	// value marks a cell reached by a value, rather than by a filler
	// group or the run's start.
	value bool
	// cover counts the digits inside values so far, tiles the values,
	// splits the digit groups split between two values.
	cover, tiles, splits int
	// prev is the index in the done list of the cell this one extends,
	// -1 for the run's start.
	prev int
}

// better reports whether a reads the run better than b: more digits in
// values, then fewer (longer) values, then fewer digit groups split
// ("+14155552671 555-234-5678" reads as two numbers at the space, not as
// "+1415555267" and "1 555-234-5678").
func (a tileCell) better(b tileCell) bool {
	if a.cover != b.cover {
		return a.cover > b.cover
	}
	if a.tiles != b.tiles {
		return a.tiles < b.tiles
	}
	return a.splits < b.splits
}

// runTiler holds the scratch space of tileRun, reused across runs.
type runTiler struct {
	// first[k] is the digit position where group k starts; first[n] is
	// the run's total.
	first []int
	// pending holds the cells not yet expanded, sorted by position, at
	// most one per position and kind; done the expanded ones.
	pending, done []tileCell
	// vg is the scratch group list a candidate value is validated on.
	vg []digitGroup
	// tiles collects the chosen values' digit ranges while backtracking.
	tiles [][2]int
	// ends caches the ends of the values that start at digit position
	// endsFrom, when endsValid.
	ends      []int
	endsFrom  int
	endsValid bool
}

// tileRun appends to dst the values of the run of digit groups g, which
// starts at s[runStart] (at a '+' or '(' before the first digits, for
// phones): of all the ways to read the run as values and filler groups,
// the one with the most digits inside values (see tileCell.better), where
//   - a value is a stretch of groups, the first and last possibly part of
//     a group, that spec.valid accepts;
//   - two values may meet across any separator, or none (a digit group
//     split between two values written back to back);
//   - a value and a filler group meet only across a space: "4111 1111 1111
//     1111 2024" holds a card, "4111 1111 1111 1111-2222" does not;
//   - a run glued on the left (gluedLeft: a word or a numeric structure
//     before it) starts with a filler group, and one glued on the right
//     ends with one: "x4111111111111111" holds no card;
//   - a parenthesized group is never split.
//
// Matches are appended in order and do not overlap.
func (t *runTiler) tileRun(s string, g []digitGroup, runStart int, gluedLeft, gluedRight bool, spec *tileSpec, dst []match) []match {
	t.first = t.first[:0]
	total := 0
	for _, x := range g {
		t.first = append(t.first, total)
		total += x.end - x.start
	}
	t.first = append(t.first, total)
	if gluedLeft && !spec.fillerThenValue || !t.roomForValue(spec) {
		return dst
	}
	t.pending = append(t.pending[:0], tileCell{prev: -1})
	t.done = t.done[:0]
	t.endsValid = false
	best := -1 // index in done of the best cell at the run's end
	for len(t.pending) > 0 {
		c := t.pending[0]
		t.pending = t.pending[:copy(t.pending, t.pending[1:])]
		t.done = append(t.done, c)
		if len(t.pending) == 0 && c.pos > 0 && c.pos < total {
			// Every reading of the rest goes through c: settle the
			// values up to it, so that a long run needs little memory.
			dst = t.emit(s, g, runStart, len(t.done)-1, dst)
			c.prev = -1
			t.done = append(t.done[:0], c)
		}
		ci := len(t.done) - 1
		if c.pos == total {
			if (!c.value || !gluedRight) && (best < 0 || c.better(t.done[best])) {
				best = ci
			}
			continue
		}
		start := c.pos == 0
		if !start && !c.value && !spec.fillerThenValue && !t.pendingValue() {
			// Only filler groups can follow: the reading is settled.
			best = ci
			for _, p := range t.pending {
				if t.done = append(t.done, p); p.better(t.done[best]) {
					best = len(t.done) - 1
				}
			}
			break
		}
		k, boundary := t.groupAt(c.pos)
		if boundary {
			// The group as filler.
			if start || !c.value || g[k].sep == ' ' {
				t.relax(tileCell{pos: t.first[k+1], cover: c.cover, tiles: c.tiles, splits: c.splits, prev: ci})
			}
			// A value starting here.
			if !(start && gluedLeft || !start && !c.value && !(spec.fillerThenValue && g[k].sep == ' ')) {
				t.values(s, g, c, ci, spec)
			}
		} else if c.value {
			t.values(s, g, c, ci, spec) // back to back with the value before
		}
	}
	if best < 0 {
		return dst
	}
	return t.emit(s, g, runStart, best, dst)
}

// emit appends, in order, the values on the path of done cells that ends
// with cell last.
func (t *runTiler) emit(s string, g []digitGroup, runStart, last int, dst []match) []match {
	t.tiles = t.tiles[:0]
	for ci := last; ci >= 0 && t.done[ci].prev >= 0; ci = t.done[ci].prev {
		if c := t.done[ci]; c.value {
			t.tiles = append(t.tiles, [2]int{t.done[c.prev].pos, c.pos})
		}
	}
	for k := len(t.tiles) - 1; k >= 0; k-- {
		a, b := t.tiles[k][0], t.tiles[k][1]
		ga, oa := t.split(a)
		gb, ob := t.split(b - 1)
		m := match{start: g[ga].start + oa, end: g[gb].start + ob + 1}
		if a == 0 {
			m.start = runStart
		} else if oa == 0 && g[ga].paren {
			m.start--
		}
		if ob+1 == g[gb].end-g[gb].start && g[gb].paren {
			m.end++
		}
		dst = append(dst, m)
	}
	return dst
}

// roomForValue reports whether some stretch of at most spec.maxGroups
// groups holds spec.minDigits digits, without which the run holds no value.
func (t *runTiler) roomForValue(spec *tileSpec) bool {
	n := len(t.first) - 1
	for k := 0; k < n; k++ {
		if t.first[min(n, k+spec.maxGroups)]-t.first[k] >= spec.minDigits {
			return true
		}
	}
	return false
}

// pendingValue reports whether a pending cell was reached by a value.
func (t *runTiler) pendingValue() bool {
	for _, p := range t.pending {
		if p.value {
			return true
		}
	}
	return false
}

// values relaxes the cells that a value starting at cell c (index ci)
// reaches. The values that start at one position are the same whatever
// the cell, so they are found once per position (see ends).
func (t *runTiler) values(s string, g []digitGroup, c tileCell, ci int, spec *tileSpec) {
	if !t.endsValid || t.endsFrom != c.pos {
		t.findEnds(s, g, c.pos, spec)
	}
	for _, e := range t.ends {
		split := 0
		if gb, ob := t.split(e); ob > 0 && gb < len(g) {
			split = 1 // e is inside group gb
		}
		t.relax(tileCell{pos: e, value: true, cover: c.cover + e - c.pos, tiles: c.tiles + 1, splits: c.splits + split, prev: ci})
	}
}

// findEnds sets t.ends to the ends of the values that start at digit
// position from.
func (t *runTiler) findEnds(s string, g []digitGroup, from int, spec *tileSpec) {
	t.ends, t.endsFrom, t.endsValid = t.ends[:0], from, true
	total := t.first[len(g)]
	ga, oa := t.split(from)
	if oa > 0 && g[ga].paren {
		return
	}
	// Walk the candidate's last group gb and the digits ob of it inside
	// the value, from minDigits digits on, one digit at a time.
	t.vg = append(t.vg[:0], g[ga])
	t.vg[0].start += oa
	if oa > 0 {
		t.vg[0].sep = 0
	}
	gb, ob := ga, oa
	for e := from + 1; e <= total && e-from <= spec.maxDigits; e++ {
		if ob == g[gb].end-g[gb].start {
			gb, ob = gb+1, 0
			if gb-ga+1 > spec.maxGroups {
				return
			}
			t.vg = append(t.vg, g[gb])
		}
		ob++
		if e-from < spec.minDigits {
			continue // too short
		}
		if ob < g[gb].end-g[gb].start && (g[gb].paren || total-e < spec.minDigits) {
			continue // would split a parenthesized group, or leave too little for a value after it
		}
		last := &t.vg[len(t.vg)-1]
		last.end = g[gb].start + ob
		if spec.valid(s, t.vg, from == 0) {
			t.ends = append(t.ends, e)
		}
	}
}

// relax records cell c unless a pending cell of its position and kind
// reads the run at least as well.
func (t *runTiler) relax(c tileCell) {
	k := 0
	for ; k < len(t.pending); k++ {
		p := &t.pending[k]
		if p.pos == c.pos && p.value == c.value {
			if c.better(*p) {
				*p = c
			}
			return
		}
		if p.pos > c.pos || p.pos == c.pos && p.value && !c.value {
			break
		}
	}
	t.pending = append(t.pending, tileCell{})
	copy(t.pending[k+1:], t.pending[k:])
	t.pending[k] = c
}

// groupAt returns the group that holds digit position pos (the last group
// for the run's end), and whether pos is where that group starts.
func (t *runTiler) groupAt(pos int) (k int, boundary bool) {
	k, off := t.split(pos)
	return k, off == 0
}

// split returns the group that holds digit position pos and the digits of
// that group before it; the run's end is group n at offset 0.
func (t *runTiler) split(pos int) (k, off int) {
	lo, hi := 0, len(t.first)-1 // first[lo] <= pos < first[hi]
	if pos >= t.first[hi] {
		return hi, pos - t.first[hi]
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if t.first[mid] <= pos {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, pos - t.first[lo]
}

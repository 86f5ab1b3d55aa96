// Package tree holds the gist tree of one MegaContext: raw text blocks at
// level 0 and progressively coarser gist nodes above, each covering F
// consecutive children. The tree is append-only: blocks are appended as
// messages arrive and a gist is built once, when its span fills.
package tree

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
)

// Node is a block (level 0) or a gist node (level >= 1).
type Node struct {
	Level int `json:"l"`
	Index int `json:"i"`
	// First and Last are the block span the node covers, inclusive.
	First int `json:"f"`
	Last  int `json:"z"`
	// Tokens is the token count of the raw text the node covers.
	Tokens int `json:"n"`
	// Text is the raw text of a block, or the gist text of a gist node.
	Text string `json:"t"`
	// Cost is the token count of Text.
	Cost int `json:"c"`
	// Short is a gist node's headline (key terms), a cheaper rendering of
	// the same span; empty for blocks.
	Short string `json:"s,omitempty"`
	// ShortCost is the token count of Short.
	ShortCost int `json:"sc,omitempty"`
	// Head is the token count of the header the renderer puts before the
	// node's text (time and role).
	Head int `json:"hd,omitempty"`
	// DetailsHead is the token count of the header the outline layout puts
	// before the node's quoted details ("Details of [span]:"); 0 when it was
	// not counted at ingest (nodes stored by older versions).
	DetailsHead int `json:"dh,omitempty"`
	// Join is what a block adds to its cost when it is written right after
	// the previous block of its message rather than on a line of its own:
	// the two counted together less each counted alone (-1 for
	// SentencePiece vocabularies, which give every text a leading space); 0
	// for a message's first block and for blocks stored by older versions.
	Join int `json:"j,omitempty"`
	// Hash is the content hash: of the block's message identity and text for
	// blocks, of the children's hashes for gists (a Merkle tree).
	Hash Hash `json:"h"`
	// Msg is the sequence number of the message a block belongs to (for a
	// gist, the message of its first block).
	Msg int64 `json:"m"`
	// Part is the block's position inside its message (0 for the first).
	Part int `json:"p,omitempty"`
	// Role is the message role of a block ("user", "assistant", "tool").
	Role string `json:"r,omitempty"`
	// Time and TimeEnd are the arrival times (Unix milliseconds) of the first
	// and last block covered.
	Time    int64 `json:"ts"`
	TimeEnd int64 `json:"te"`
	// Tags are policy tags of the covered text (union over children for gists).
	Tags []string `json:"g,omitempty"`
	// Spans are the sensitive spans of a block's text (byte offsets into
	// Text), tagged at ingest so that assembly can filter without scanning.
	Spans []Span `json:"sp,omitempty"`
}

// Hash is a SHA-256 content hash. It is stored as base64 text (43
// characters); records written before as a JSON array of 32 numbers (about
// 110 characters, and slow to decode) still read.
type Hash [32]byte

// MarshalJSON writes the hash as a base64 string.
func (h Hash) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+base64.RawStdEncoding.EncodedLen(len(h)))
	out = append(out, '"')
	out = base64.RawStdEncoding.AppendEncode(out, h[:])
	return append(out, '"'), nil
}

// UnmarshalJSON reads a base64 string or, from older records, an array of
// 32 numbers.
func (h *Hash) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, (*[32]byte)(h))
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if len(s) != base64.RawStdEncoding.EncodedLen(len(h)) {
		return fmt.Errorf("tree: hash of %d characters, want %d", len(s), base64.RawStdEncoding.EncodedLen(len(h)))
	}
	_, err := base64.RawStdEncoding.Decode(h[:], []byte(s))
	return err
}

// Span is a tagged byte range of a block's text.
type Span struct {
	Start int    `json:"s"`
	End   int    `json:"e"`
	Rule  string `json:"r"`
}

// Span returns the number of blocks the node covers.
func (n *Node) Span() int { return n.Last - n.First + 1 }

// Gist is the text of a gist node in its two lengths, with token costs.
type Gist struct {
	Text      string
	Cost      int
	Short     string
	ShortCost int
	Head      int
}

// Summarizer builds the gist of a new level-l node from its children.
type Summarizer func(level int, children []*Node) Gist

// Tree is the gist tree of one timeline. The zero value is not usable; call New.
type Tree struct {
	k, f      int
	summarize Summarizer
	levels    [][]*Node
	// roles holds each block's Role as an index into roleNames (the few
	// roles a history holds, each once; overflowRole: read the node), and
	// msgs each block's Msg, so that a scan over many blocks reads a few
	// bytes a block, not each block's node. They change with levels[0]
	// (Append, Restore, Truncate, Replace, Reread).
	roles     []uint8
	roleNames []string
	msgs      []int64
}

// overflowRole is the code of a role past the 255 roleNames hold.
const overflowRole = 255

// New returns an empty tree with block size k tokens and fan-out f.
func New(k, f int, summarize Summarizer) *Tree {
	if f < 2 {
		panic(fmt.Sprintf("tree: fan-out %d < 2", f))
	}
	return &Tree{k: k, f: f, summarize: summarize, levels: [][]*Node{nil}}
}

// Summarize runs the tree's summarizer over children of a level-l node
// (used to rebuild a gist whose children's text was re-tagged).
func (t *Tree) Summarize(level int, children []*Node) Gist { return t.summarize(level, children) }

// BlockTokens returns K, the nominal block size in tokens.
func (t *Tree) BlockTokens() int { return t.k }

// Fanout returns F.
func (t *Tree) Fanout() int { return t.f }

// Len returns the number of blocks.
func (t *Tree) Len() int { return len(t.levels[0]) }

// Height returns the number of levels (1 when there are only blocks).
func (t *Tree) Height() int { return len(t.levels) }

// LevelLen returns the number of nodes at level l.
func (t *Tree) LevelLen(l int) int {
	if l < 0 || l >= len(t.levels) {
		return 0
	}
	return len(t.levels[l])
}

// Node returns node i of level l, or nil.
func (t *Tree) Node(l, i int) *Node {
	if l < 0 || l >= len(t.levels) || i < 0 || i >= len(t.levels[l]) {
		return nil
	}
	return t.levels[l][i]
}

// Block returns block i.
func (t *Tree) Block(i int) *Node { return t.Node(0, i) }

// BlockRole returns block i's Role (i in [0, Len())) without reading its
// node.
func (t *Tree) BlockRole(i int) string {
	if c := t.roles[i]; c != overflowRole {
		return t.roleNames[c]
	}
	return t.levels[0][i].Role
}

// BlockMsg returns block i's Msg (i in [0, Len())) without reading its
// node.
func (t *Tree) BlockMsg(i int) int64 { return t.msgs[i] }

// roleCode returns role's code in roles.
func (t *Tree) roleCode(role string) uint8 {
	for i, r := range t.roleNames {
		if r == role {
			return uint8(i)
		}
	}
	if len(t.roleNames) == overflowRole {
		return overflowRole
	}
	t.roleNames = append(t.roleNames, role)
	return uint8(len(t.roleNames) - 1)
}

// Reread takes in what a caller changed in block n in place (a stored
// record copied over it).
func (t *Tree) Reread(n *Node) {
	if n.Level == 0 && n.Index >= 0 && n.Index < len(t.roles) && t.levels[0][n.Index] == n {
		t.roles[n.Index], t.msgs[n.Index] = t.roleCode(n.Role), n.Msg
	}
}

// Children returns the children of a gist node (nil for blocks).
func (t *Tree) Children(n *Node) []*Node {
	if n.Level == 0 {
		return nil
	}
	lo := n.Index * t.f
	return t.levels[n.Level-1][lo : lo+t.f]
}

// Parent returns the parent of n, or nil when it has none yet.
func (t *Tree) Parent(n *Node) *Node { return t.Node(n.Level+1, n.Index/t.f) }

// At returns the node of level l that starts at block pos, or nil when no
// such node exists (pos not aligned or the span not yet filled).
func (t *Tree) At(l, pos int) *Node {
	w := t.width(l)
	if pos%w != 0 {
		return nil
	}
	return t.Node(l, pos/w)
}

// width returns the number of blocks a full node of level l covers.
func (t *Tree) width(l int) int {
	w := 1
	for ; l > 0; l-- {
		w *= t.f
	}
	return w
}

// Append appends a block and builds every gist whose span it fills. The
// block's Level, Index, First, Last and Hash are set here; Text, Tokens,
// Cost, Msg, Part, Role, Time and Tags must be set by the caller. Append
// returns the new nodes, the block first, for persistence.
func (t *Tree) Append(b *Node) []*Node {
	b.Level = 0
	b.Index = len(t.levels[0])
	b.First, b.Last = b.Index, b.Index
	b.TimeEnd = b.Time
	b.Hash = BlockHash(b)
	t.levels[0] = append(t.levels[0], b)
	t.roles, t.msgs = append(t.roles, t.roleCode(b.Role)), append(t.msgs, b.Msg)
	created := []*Node{b}
	for l := 0; ; l++ {
		n := len(t.levels[l])
		if n%t.f != 0 {
			break
		}
		children := t.levels[l][n-t.f:]
		g := t.buildGist(l+1, n/t.f-1, children)
		if l+1 == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		t.levels[l+1] = append(t.levels[l+1], g)
		created = append(created, g)
	}
	return created
}

// Restore adds a node read back from storage. Nodes must be restored level
// by level in index order, exactly as Append created them.
func (t *Tree) Restore(n *Node) error {
	for n.Level >= len(t.levels) {
		t.levels = append(t.levels, nil)
	}
	if n.Index != len(t.levels[n.Level]) {
		return fmt.Errorf("tree: restore node %d/%d out of order (have %d)", n.Level, n.Index, len(t.levels[n.Level]))
	}
	t.levels[n.Level] = append(t.levels[n.Level], n)
	if n.Level == 0 {
		t.roles, t.msgs = append(t.roles, t.roleCode(n.Role)), append(t.msgs, n.Msg)
	}
	return nil
}

// RestoreGist rebuilds gist node index of level from its children, which
// must be restored, in place of a stored node that could not be read back.
func (t *Tree) RestoreGist(level, index int) error {
	if level < 1 || level > len(t.levels) {
		return fmt.Errorf("tree: rebuild gist %d/%d: no level below", level, index)
	}
	lo, hi := index*t.f, (index+1)*t.f
	if hi > len(t.levels[level-1]) {
		return fmt.Errorf("tree: rebuild gist %d/%d: children missing", level, index)
	}
	return t.Restore(t.buildGist(level, index, t.levels[level-1][lo:hi]))
}

func (t *Tree) buildGist(level, index int, children []*Node) *Node {
	g := &Node{
		Level:   level,
		Index:   index,
		First:   children[0].First,
		Last:    children[len(children)-1].Last,
		Msg:     children[0].Msg,
		Time:    children[0].Time,
		TimeEnd: children[len(children)-1].TimeEnd,
	}
	seen := map[string]bool{}
	for _, c := range children {
		g.Tokens += c.Tokens
		for _, tag := range c.Tags {
			if !seen[tag] {
				seen[tag] = true
				g.Tags = append(g.Tags, tag)
			}
		}
	}
	g.Hash = GistHash(level, children)
	gs := t.summarize(level, children)
	g.Text, g.Cost, g.Short, g.ShortCost, g.Head = gs.Text, gs.Cost, gs.Short, gs.ShortCost, gs.Head
	return g
}

// GistHash is the Merkle hash of a level-l gist node: of its level and its
// children's hashes, in order.
func GistHash(level int, children []*Node) [32]byte {
	h := sha256.New()
	var lv [8]byte
	binary.LittleEndian.PutUint64(lv[:], uint64(level))
	h.Write(lv[:])
	for _, c := range children {
		h.Write(c.Hash[:])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Verify checks the tree's structure and provenance: blocks numbered in
// order, each with its content hash; every level holding one node per F
// nodes below; each gist covering exactly its children's span with their
// Merkle hash and token count. It returns the first defect found.
func (t *Tree) Verify() error {
	for i, b := range t.levels[0] {
		switch {
		case b.Level != 0 || b.Index != i || b.First != i || b.Last != i:
			return fmt.Errorf("tree: block %d is numbered %d/%d [%d, %d]", i, b.Level, b.Index, b.First, b.Last)
		case b.Hash != BlockHash(b):
			return fmt.Errorf("tree: block %d does not match its hash", i)
		}
	}
	for l := 1; l < len(t.levels); l++ {
		if want := len(t.levels[l-1]) / t.f; len(t.levels[l]) != want {
			return fmt.Errorf("tree: level %d has %d nodes over %d, want %d", l, len(t.levels[l]), len(t.levels[l-1]), want)
		}
		for i, g := range t.levels[l] {
			children := t.levels[l-1][i*t.f : (i+1)*t.f]
			tokens := 0
			for _, c := range children {
				tokens += c.Tokens
			}
			switch {
			case g.Level != l || g.Index != i:
				return fmt.Errorf("tree: node %d/%d is numbered %d/%d", l, i, g.Level, g.Index)
			case g.First != children[0].First || g.Last != children[len(children)-1].Last:
				return fmt.Errorf("tree: node %d/%d spans [%d, %d], its children [%d, %d]", l, i, g.First, g.Last, children[0].First, children[len(children)-1].Last)
			case g.Tokens != tokens:
				return fmt.Errorf("tree: node %d/%d counts %d tokens, its children %d", l, i, g.Tokens, tokens)
			case g.Hash != GistHash(l, children):
				return fmt.Errorf("tree: node %d/%d does not match its children's Merkle hash", l, i)
			}
		}
	}
	return nil
}

// BlockHash is the content hash of a block: its message, position, role,
// time and text.
func BlockHash(b *Node) Hash {
	h := sha256.New()
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], uint64(b.Msg))
	binary.LittleEndian.PutUint64(buf[8:], uint64(b.Part))
	binary.LittleEndian.PutUint64(buf[16:], uint64(b.Time))
	h.Write(buf[:])
	h.Write([]byte(b.Role))
	h.Write([]byte{0})
	h.Write([]byte(b.Text))
	var out Hash
	copy(out[:], h.Sum(nil))
	return out
}

// Roots returns the coarsest cover of blocks [from, Len()): the largest
// existing nodes that tile the range, oldest first.
func (t *Tree) Roots(from int) []*Node {
	var out []*Node
	for pos := from; pos < t.Len(); {
		n := t.largestAt(pos, t.Len())
		out = append(out, n)
		pos = n.Last + 1
	}
	return out
}

// largestAt returns the highest node that starts at pos and ends before end.
func (t *Tree) largestAt(pos, end int) *Node {
	for l := len(t.levels) - 1; l > 0; l-- {
		if n := t.At(l, pos); n != nil && n.Last < end {
			return n
		}
	}
	return t.levels[0][pos]
}

// Cover returns the coarsest cover of blocks [from, to).
func (t *Tree) Cover(from, to int) []*Node {
	var out []*Node
	for pos := from; pos < to; {
		n := t.largestAt(pos, to)
		out = append(out, n)
		pos = n.Last + 1
	}
	return out
}

// Truncate takes the tree back to its first n blocks, as it was before the
// blocks after them were appended: the blocks from n on and every gist
// whose span reaches them are dropped. It undoes a speculative append (a
// dry run that ingests in memory only); n beyond Len is a no-op.
func (t *Tree) Truncate(n int) {
	if n < 0 || n >= t.Len() {
		return
	}
	t.levels[0] = t.levels[0][:n]
	t.roles, t.msgs = t.roles[:n], t.msgs[:n]
	for l := 1; l < len(t.levels); l++ {
		t.levels[l] = t.levels[l][:min(len(t.levels[l]), n/t.width(l))]
	}
	for len(t.levels) > 1 && len(t.levels[len(t.levels)-1]) == 0 {
		t.levels = t.levels[:len(t.levels)-1]
	}
}

// Blocks returns the blocks, oldest first, as a slice that stays valid
// when blocks are appended: a reader may keep it (a window's explanation,
// read in the background) while the tree grows. It must not be modified.
func (t *Tree) Blocks() []*Node { return t.levels[0][:len(t.levels[0]):len(t.levels[0])] }

// Replace puts nodes in the places of the nodes they stand for (same
// level and index): a retention rule rewrote them. Each level it touches
// is copied first, so that a slice from Blocks taken earlier keeps the
// nodes it had.
func (t *Tree) Replace(nodes []*Node) {
	copied := map[int]bool{}
	for _, n := range nodes {
		if n.Level >= len(t.levels) || n.Index >= len(t.levels[n.Level]) {
			continue
		}
		if !copied[n.Level] {
			t.levels[n.Level] = slices.Clone(t.levels[n.Level])
			copied[n.Level] = true
		}
		t.levels[n.Level][n.Index] = n
		if n.Level == 0 {
			t.roles[n.Index], t.msgs[n.Index] = t.roleCode(n.Role), n.Msg
		}
	}
}

package tree

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func summarize(level int, children []*Node) Gist {
	return Gist{Text: fmt.Sprintf("g%d:%d", level, len(children)), Cost: 3, Short: "s", ShortCost: 1}
}

func TestAppendBuildsGistsWhenSpansFill(t *testing.T) {
	tr := New(32, 4, summarize)
	var created int
	for i := 0; i < 16; i++ {
		created += len(tr.Append(&Node{Text: fmt.Sprint(i), Tokens: 10, Cost: 10, Msg: int64(i)}))
	}
	// 16 blocks, 4 level-1 gists, 1 level-2 gist.
	if tr.LevelLen(0) != 16 || tr.LevelLen(1) != 4 || tr.LevelLen(2) != 1 || created != 21 {
		t.Fatalf("levels %d/%d/%d, created %d", tr.LevelLen(0), tr.LevelLen(1), tr.LevelLen(2), created)
	}
	root := tr.Node(2, 0)
	if root.First != 0 || root.Last != 15 || root.Tokens != 160 {
		t.Fatalf("root %+v", root)
	}
	if got := tr.Children(root); len(got) != 4 || got[3] != tr.Node(1, 3) {
		t.Fatalf("children %v", got)
	}
}

func TestMerkleHashTracksContent(t *testing.T) {
	build := func(last string) *Tree {
		tr := New(32, 2, summarize)
		for i, s := range []string{"a", "b", "c", last} {
			tr.Append(&Node{Text: s, Msg: int64(i)})
		}
		return tr
	}
	a, b := build("d"), build("D")
	if a.Node(2, 0).Hash == b.Node(2, 0).Hash {
		t.Fatal("root hash ignores a changed block")
	}
	if a.Node(1, 0).Hash != b.Node(1, 0).Hash {
		t.Fatal("an unchanged subtree changed hash")
	}
}

func TestCoverTilesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := rapid.IntRange(2, 6).Draw(t, "f")
		n := rapid.IntRange(0, 300).Draw(t, "n")
		tr := New(32, f, summarize)
		for i := 0; i < n; i++ {
			tr.Append(&Node{Text: "x", Msg: int64(i)})
		}
		from := rapid.IntRange(0, n).Draw(t, "from")
		to := rapid.IntRange(from, n).Draw(t, "to")
		pos := from
		for _, nd := range tr.Cover(from, to) {
			if nd.First != pos || nd.Last >= to || tr.Node(nd.Level, nd.Index) != nd {
				t.Fatalf("cover breaks at %d: node %d/%d [%d,%d]", pos, nd.Level, nd.Index, nd.First, nd.Last)
			}
			pos = nd.Last + 1
		}
		if pos != to {
			t.Fatalf("cover ends at %d, want %d", pos, to)
		}
	})
}

func TestRestoreRejectsOutOfOrder(t *testing.T) {
	tr := New(32, 2, summarize)
	if err := tr.Restore(&Node{Level: 0, Index: 1}); err == nil {
		t.Fatal("out-of-order restore accepted")
	}
	if err := tr.Restore(&Node{Level: 0, Index: 0}); err != nil {
		t.Fatal(err)
	}
}

// TestHashJSON: hashes are written as base64 and read back from it and
// from the JSON arrays of records written before.
func TestHashJSON(t *testing.T) {
	var h Hash
	for i := range h {
		h[i] = byte(i * 7)
	}
	b, err := json.Marshal(Node{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"h":"`) {
		t.Fatalf("hash not written as a string: %s", b)
	}
	var n Node
	if err := json.Unmarshal(b, &n); err != nil || n.Hash != h {
		t.Fatalf("round trip: %v %x", err, n.Hash)
	}
	old, _ := json.Marshal(map[string]any{"h": [32]byte(h)})
	var o Node
	if err := json.Unmarshal(old, &o); err != nil || o.Hash != h {
		t.Fatalf("old array form %s: %v %x", old, err, o.Hash)
	}
	for _, bad := range []string{`{"h":"abc"}`, `{"h":3}`, `{"h":"` + strings.Repeat("A", 44) + `"}`} {
		var x Node
		if err := json.Unmarshal([]byte(bad), &x); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestVerifyFindsDefects: a tree built by Append verifies; a block whose
// text changed, a gist whose hash or span is wrong, or a missing gist
// does not.
func TestVerifyFindsDefects(t *testing.T) {
	build := func() *Tree {
		tr := New(32, 4, summarize)
		for i := 0; i < 37; i++ {
			tr.Append(&Node{Text: fmt.Sprint("block ", i), Tokens: 3, Msg: int64(i / 3), Part: i % 3})
		}
		return tr
	}
	if err := build().Verify(); err != nil {
		t.Fatalf("a sound tree: %v", err)
	}
	for name, damage := range map[string]func(*Tree){
		"block text":   func(tr *Tree) { tr.Block(5).Text = "changed" },
		"gist hash":    func(tr *Tree) { tr.Node(2, 1).Hash[0] ^= 1 },
		"gist span":    func(tr *Tree) { tr.Node(1, 3).Last++ },
		"gist tokens":  func(tr *Tree) { tr.Node(1, 0).Tokens++ },
		"missing gist": func(tr *Tree) { tr.levels[1] = tr.levels[1][:len(tr.levels[1])-1] },
		"renumbered":   func(tr *Tree) { tr.Block(7).Index = 8 },
	} {
		tr := build()
		damage(tr)
		if err := tr.Verify(); err == nil {
			t.Errorf("%s: Verify found nothing", name)
		}
	}
}

// BlockRole and BlockMsg, read from the tree's columns, are each block's
// Role and Msg through appends, restores, truncations, replacements and
// nodes changed in place, past the 255 roles the column names.
func TestBlockColumnsFollowTheBlocks(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tr := New(32, rapid.IntRange(2, 4).Draw(t, "f"), summarize)
		restored := New(32, 2, summarize)
		role := rapid.SampledFrom([]string{"user", "assistant", "tool", "system"})
		for step := range rapid.IntRange(0, 60).Draw(t, "steps") {
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0, 1:
				r := role.Draw(t, "role")
				if rapid.IntRange(0, 9).Draw(t, "many") == 0 {
					r = fmt.Sprintf("r%d", step*7) // past the column's names now and then
				}
				tr.Append(&Node{Text: "x", Role: r, Msg: int64(step)})
			case 2:
				tr.Truncate(rapid.IntRange(0, tr.Len()).Draw(t, "n"))
			case 3:
				if tr.Len() > 0 {
					i := rapid.IntRange(0, tr.Len()-1).Draw(t, "i")
					nd := *tr.Block(i)
					nd.Role, nd.Msg = role.Draw(t, "role"), int64(step)
					tr.Replace([]*Node{&nd})
				}
			case 4:
				if tr.Len() > 0 {
					nd := tr.Block(rapid.IntRange(0, tr.Len()-1).Draw(t, "i"))
					nd.Role, nd.Msg = role.Draw(t, "role"), int64(step)
					tr.Reread(nd)
				}
			}
		}
		for i := range tr.Len() {
			if got, want := tr.BlockRole(i), tr.Block(i).Role; got != want {
				t.Fatalf("block %d: BlockRole %q, Role %q", i, got, want)
			}
			if got, want := tr.BlockMsg(i), tr.Block(i).Msg; got != want {
				t.Fatalf("block %d: BlockMsg %d, Msg %d", i, got, want)
			}
			nd := *tr.Block(i)
			nd.Level, nd.Index = 0, i
			if err := restored.Restore(&nd); err != nil {
				t.Fatal(err)
			}
			if got := restored.BlockRole(i); got != nd.Role || restored.BlockMsg(i) != nd.Msg {
				t.Fatalf("restored block %d: BlockRole %q, BlockMsg %d; Role %q, Msg %d", i, got, restored.BlockMsg(i), nd.Role, nd.Msg)
			}
		}
	})
	tr := New(32, 2, summarize)
	for i := range 300 {
		tr.Append(&Node{Text: "x", Role: fmt.Sprintf("r%d", i)})
	}
	for i := range 300 {
		if got := tr.BlockRole(i); got != fmt.Sprintf("r%d", i) {
			t.Fatalf("block %d of 300 roles: BlockRole %q", i, got)
		}
	}
}

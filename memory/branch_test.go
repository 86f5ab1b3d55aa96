package memory

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

// client drives a context the way chat clients do: several conversations,
// each resent whole every turn, some edited (a branch).
type client struct {
	e     *Engine
	k     Key
	convs [][]Message
	n     int // texts drawn so far, so that every text is new
	tag   string
}

func (cl *client) text(t *rapid.T, role string) Message {
	cl.n++
	words := rapid.SliceOfN(rapid.SampledFrom(words), 3, 40).Draw(t, "words")
	return msg(role, fmt.Sprintf("%s %s %d: %s.", cl.tag, role, cl.n, strings.Join(words, " ")))
}

// step makes one random move: a new chat, a turn in a chat, or an edit.
func (cl *client) step(t *rapid.T) {
	var conv []Message
	i := -1
	switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
	case len(cl.convs) == 0 || op == 0:
		conv = []Message{msg("system", "You are helpful.")}
	case op <= 7:
		i = rapid.IntRange(0, len(cl.convs)-1).Draw(t, "conv")
		conv = cl.convs[i]
	default:
		i = rapid.IntRange(0, len(cl.convs)-1).Draw(t, "conv")
		c := cl.convs[i]
		cut := 1 + 2*rapid.IntRange(0, (len(c)-1)/2).Draw(t, "cut")
		conv = append([]Message(nil), c[:min(cut, len(c))]...)
	}
	conv = append(append([]Message(nil), conv...), cl.text(t, "user"))
	w, err := cl.e.Prepare(Request{Key: cl.k, Messages: conv, Budget: 2000, PerMessage: 4, TailPercent: 30})
	if err != nil {
		t.Fatal(err)
	}
	reply := cl.text(t, "assistant")
	if err := cl.e.AppendResponse(cl.k, w.LastSeq, w.NextSeq, reply, false); err != nil {
		t.Fatal(err)
	}
	conv = append(conv, reply)
	if i < 0 {
		cl.convs = append(cl.convs, conv)
	} else {
		cl.convs[i] = conv
	}
}

func messagesOf(t *rapid.T, e *Engine, k Key) []MessageInfo {
	ms, err := e.Messages(k, 0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestDiffWithItselfIsEmptyProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := openWith(t, "", nil, 4)
		cl := &client{e: e, k: Key{Tenant: "t", Context: "a"}, tag: "a"}
		for range rapid.IntRange(1, 12).Draw(t, "steps") {
			cl.step(t)
		}
		d, err := e.Diff(cl.k, "a", 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := e.Stats(cl.k)
		if d.A.Count != 0 || d.B.Count != 0 || len(d.A.Spans) != 0 || d.Ancestor.Messages != st.Messages || d.Ancestor.Blocks != st.Blocks {
			t.Fatalf("diff(a, a) = %+v for %d messages, %d blocks", d, st.Messages, st.Blocks)
		}
	})
}

// TestForkMergeLawsProperty: fork a into b at a random message, let both
// sides grow, merge b into a. The merge adds exactly b's new messages (those
// a lacks), in b's order, each naming its origin, and changes nothing a
// held; then diff(a, b) has nothing on b's side, a second merge adds
// nothing, and export then import keeps the root.
func TestForkMergeLawsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := openWith(t, "", nil, 4)
		a := &client{e: e, k: Key{Tenant: "t", Context: "a"}, tag: "a"}
		for range rapid.IntRange(1, 8).Draw(t, "before") {
			a.step(t)
		}
		st, _ := e.Stats(a.k)
		at := int64(rapid.IntRange(-1, st.Messages-1).Draw(t, "at"))
		fr, err := e.Fork(a.k, "b", at, "test")
		if err != nil {
			t.Fatal(err)
		}
		if at < 0 {
			at = int64(st.Messages - 1)
		}
		b := &client{e: e, k: Key{Tenant: "t", Context: "b"}, tag: "b", convs: slices.Clone(a.convs), n: 1000}
		// The fork holds a's first at+1 messages, as a holds them (live
		// where a's competing branch is not in the fork).
		ma, mb := messagesOf(t, e, a.k), messagesOf(t, e, b.k)
		if int64(len(mb)) != at+1 || fr.Messages != len(mb) {
			t.Fatalf("fork at %d holds %d messages (said %d)", at, len(mb), fr.Messages)
		}
		for i := range mb {
			x, y := ma[i], mb[i]
			x.Superseded, y.Superseded = false, false
			if !equalJSON(x, y) {
				t.Fatalf("fork message %d differs:\n%+v\n%+v", i, ma[i], mb[i])
			}
		}
		if at == int64(st.Messages-1) && !equalJSON(ma, mb) {
			t.Fatal("a whole fork differs from its source")
		}
		for range rapid.IntRange(0, 6).Draw(t, "a after") {
			a.step(t)
		}
		for range rapid.IntRange(0, 6).Draw(t, "b after") {
			b.step(t)
		}
		before := messagesOf(t, e, a.k)
		ca, _, _ := e.get(a.k, false)
		cb, _, _ := e.get(b.k, false)
		ca.mu.Lock()
		cb.mu.Lock()
		want := missingFrom(cb, ca)
		blocksBefore := ca.tree.Len()
		var blockTexts []string
		for i := 0; i < blocksBefore; i++ {
			blockTexts = append(blockTexts, ca.tree.Block(i).Text)
		}
		cb.mu.Unlock()
		ca.mu.Unlock()
		d, err := e.Diff(a.k, "b", 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.B.Count != len(want) {
			t.Fatalf("diff lists %d messages on b's side, b has %d a lacks", d.B.Count, len(want))
		}

		res, err := e.Merge(a.k, "b", "test")
		if err != nil {
			t.Fatal(err)
		}
		after := messagesOf(t, e, a.k)
		if !equalJSON(after[:len(before)], before) {
			t.Fatal("merge changed a message a held")
		}
		added := after[len(before):]
		if len(added) != len(want) || len(res.Messages) != len(want) {
			t.Fatalf("merge added %d messages, b had %d that a lacked", len(added), len(want))
		}
		for i, m := range added {
			w := want[i]
			if m.Role != w.Role || m.Text != w.Text || m.Origin == nil || m.Origin.Context != "b" || m.Origin.Seq != w.Seq || m.Seq != res.Messages[i] {
				t.Fatalf("merged message %d: %+v, want b's %d (%s %q)", i, m, w.Seq, w.Role, w.Text)
			}
		}
		ca, _, _ = e.get(a.k, false)
		ca.mu.Lock()
		for i, txt := range blockTexts {
			if ca.tree.Block(i).Text != txt {
				ca.mu.Unlock()
				t.Fatalf("block %d changed", i)
			}
		}
		grown := ca.tree.Len() - blocksBefore
		ca.mu.Unlock()
		if (grown > 0) != (res.FirstBlock >= 0) || (grown > 0 && res.LastBlock-res.FirstBlock+1 != grown) {
			t.Fatalf("tree grew by %d blocks, merge says %d..%d", grown, res.FirstBlock, res.LastBlock)
		}
		if d, _ := e.Diff(a.k, "b", 10, nil); d.B.Count != 0 {
			t.Fatalf("after the merge b still has %d messages a lacks", d.B.Count)
		}
		if again, _ := e.Merge(a.k, "b", "test"); len(again.Messages) != 0 {
			t.Fatalf("a second merge added %d messages", len(again.Messages))
		}
		// Windows still assemble over the grown tree.
		if _, err := e.Prepare(Request{Key: a.k, Messages: []Message{msg("user", "garden river?")}, Budget: 800, PerMessage: 4, TailPercent: 30, DryRun: true}); err != nil {
			t.Fatal(err)
		}
		// Export then import keeps the root, forks and merges included.
		for _, k := range []Key{a.k, b.k} {
			var buf bytes.Buffer
			root, err := e.ExportBundle(k, &buf, ExportOptions{Operator: true})
			if err != nil {
				t.Fatal(err)
			}
			dst := openWith(t, "", nil, 4)
			res, err := dst.ImportBundle(k, bytes.NewReader(buf.Bytes()), ImportOptions{})
			if err != nil || res.Root.Hash != root.Hash || res.Rebuilt {
				t.Fatalf("import of %s: %v (rebuilt %v)", k.Context, err, res.Rebuilt)
			}
			var again bytes.Buffer
			if root2, _ := dst.ExportBundle(k, &again, ExportOptions{Operator: true}); root2.Hash != root.Hash {
				t.Fatalf("%s: export, import, export changed the root", k.Context)
			}
		}
	})
}

func TestForkSharesRecordsAndRefusesExisting(t *testing.T) {
	e := openWith(t, t.TempDir(), nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(t, e, k, 30)
	res, err := e.Fork(k, "f", -1, "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.SharedRecords == 0 || res.CopiedRecords != 1 {
		t.Fatalf("fork: %+v (want every record shared but the fork's provenance)", res)
	}
	// The fork's records are the source's strings, not copies.
	var src, dst string
	e.st.Scan(recordPrefix(kindNode, k), func(_, v string) bool { src = v; return false })
	e.st.Scan(recordPrefix(kindNode, Key{Tenant: "t", Context: "f"}), func(_, v string) bool { dst = v; return false })
	if src != dst || len(src) == 0 || (!onPostgres && !sameBacking(src, dst)) {
		t.Fatal("the fork's first node record does not share the source's bytes")
	}
	if _, err := e.Fork(k, "f", -1, "test"); !errors.Is(err, ErrExists) {
		t.Fatalf("fork onto an existing context: %v", err)
	}
	if _, err := e.Fork(k, "g", 10_000, "test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fork past the end: %v", err)
	}
	if _, err := e.Fork(Key{Tenant: "t", Context: "nobody"}, "h", -1, "test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fork of a missing context: %v", err)
	}
	// The fork survives a restart, with its provenance.
	var buf bytes.Buffer
	if _, err := e.ExportBundle(Key{Tenant: "t", Context: "f"}, &buf, ExportOptions{Operator: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"kind":"fork","time":`)) || !bytes.Contains(buf.Bytes(), []byte(`"from":"c","at":`)) {
		t.Fatal("the fork's bundle lacks its fork record")
	}
}

// sameBacking reports whether two strings share their bytes.
func sameBacking(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestProvenanceTracesSpans follows blocks of an imported, forked, merged
// and partly erased context to their message, thread, origin, Merkle path
// and snapshot.
func TestProvenanceTracesSpans(t *testing.T) {
	e := openWith(t, t.TempDir(), nil, 4)
	team := Key{Tenant: "t", Context: "team"}
	richContext(t, e, team, 12)
	var buf bytes.Buffer
	root, err := e.ExportBundle(team, &buf, ExportOptions{Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	mine := Key{Tenant: "t", Context: "mine"}
	if _, err := e.ImportBundle(mine, bytes.NewReader(buf.Bytes()), ImportOptions{Caller: "importer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Fork(mine, "side", 6, "test"); err != nil {
		t.Fatal(err)
	}
	side := Key{Tenant: "t", Context: "side"}
	if _, err := e.Prepare(Request{Key: side, Messages: []Message{msg("user", "Side note: the spare key is under the blue pot.")}, Budget: 2000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	mr, err := e.Merge(mine, "side", "test")
	if err != nil || mr.FirstBlock < 0 {
		t.Fatalf("merge: %+v %v", mr, err)
	}
	st, _ := e.Stats(mine)
	own, err := e.Provenance(mine, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if own.Origin.Kind != "own" || own.Snapshot.Imported == nil || own.Snapshot.Imported.Root != root.String() ||
		own.Message.Seq != 1 || len(own.Thread) != 2 || own.Thread[0] != 0 || len(own.Path) != len(st.NodesPerLevel)-1 || own.Block.Hash == "" {
		t.Fatalf("block 0: %+v", own)
	}
	merged, err := e.Provenance(mine, mr.FirstBlock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if merged.Origin.Kind != "merged" || merged.Origin.From != "side" || merged.Snapshot.Imported != nil ||
		!strings.Contains(merged.Block.Text, "blue pot") || len(merged.Records) != 1 || merged.Records[0].Kind != provMerge {
		t.Fatalf("merged block: %+v", merged)
	}
	forked, err := e.Provenance(side, 0, nil)
	if err != nil || forked.Origin.Kind != "forked" || forked.Origin.From != "mine" {
		t.Fatalf("forked block: %+v %v", forked, err)
	}
	if _, err := e.Erase(mine, EraseRequest{Messages: []int64{1}, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	erased, err := e.Provenance(mine, 0, nil)
	if err != nil || erased.Block.Text != ErasedText || erased.Snapshot.Imported != nil || len(erased.Records) != 1 || erased.Records[0].Kind != provForget {
		t.Fatalf("erased block: %+v %v", erased, err)
	}
	if _, err := e.Provenance(mine, 1<<20, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a block past the end: %v", err)
	}
}

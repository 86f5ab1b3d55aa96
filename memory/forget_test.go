package memory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// folderHolds counts the occurrences of text, as is and as JSON escapes
// it, in every file under dir.
func folderHolds(t *testing.T, dir, text string) int {
	t.Helper()
	if onPostgres {
		return databaseHolds(t, dir, text)
	}
	q, _ := json.Marshal(text)
	forms := [][]byte{[]byte(text), q[1 : len(q)-1]}
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, f := range forms {
			if i == 0 || !bytes.Equal(f, forms[0]) {
				n += bytes.Count(b, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// secretContext stores a conversation that says secret in many ways: in a
// user turn, in a reply, in a long message where it straddles blocks, in a
// system prompt, in a participant's name, in a served response, with
// embeddings and focus telemetry.
func secretContext(t *testing.T, e *Engine, k Key, secret string) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	var long strings.Builder
	for i := 0; i < 40; i++ {
		long.WriteString(filler(r, 1+r.IntN(9)))
		long.WriteString(" " + secret + " ")
	}
	conv := []Message{msg("system", "Never read "+secret+" aloud."), msg("user", "My locker code is "+secret+", remember it.")}
	w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30})
	if err != nil {
		t.Fatal(err)
	}
	reply := msg("assistant", "Noted: "+secret+".")
	if _, err := e.StoreResponse(k, w.LastSeq, w.NextSeq, &reply, false, &ResponseRecord{ID: "resp_1", Object: []byte(`{"output_text":"Noted: ` + secret + `."}`)}); err != nil {
		t.Fatal(err)
	}
	conv = append(conv, reply, Message{Role: "user", Name: "agent-" + secret, Text: long.String()})
	for i := range 30 {
		conv = append(conv, msg("assistant", filler(r, 40)), msg("user", filler(r, 30)+fmt.Sprint(" turn ", i)))
	}
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	ask(t, e, k, "What is my locker code?", 1500)
	e.SettleFocus()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitEmbedded(ctx, k); err != nil {
		t.Fatal(err)
	}
}

func TestEraseMatchLeavesNothingInTheDataFolder(t *testing.T) {
	dir := t.TempDir()
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Embedder: &conceptEmbedder{}, Policy: testPolicy(t), Fanout: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	const secret = "ZX-4471-QK"
	k := Key{Tenant: "t", Context: "c"}
	secretContext(t, e, k, secret)
	if n := folderHolds(t, dir, secret); n == 0 {
		t.Fatal("setup: the secret is not in the data folder")
	}
	w := window(t, e, k, "What is my locker code?", nil)
	if !strings.Contains(w.Memory, secret) {
		t.Fatalf("setup: the window lacks the secret:\n%s", w.Memory)
	}
	res, err := e.Erase(k, EraseRequest{Match: secret, Reason: "user asked", Caller: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Occurrences < 44 || res.Responses != 1 || res.Gists == 0 || len(res.Messages) < 4 {
		t.Fatalf("erase: %+v", res)
	}
	if n := folderHolds(t, dir, secret); n != 0 {
		t.Fatalf("the data folder still holds the secret %d times", n)
	}
	// No later window holds it, nor the listing, nor a view of the kept windows.
	w = window(t, e, k, "What is my locker code?", nil)
	live, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "Tell me the locker code again.")}, Budget: 3000, PerMessage: 4, TailPercent: 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{w.Memory, live.Memory} {
		if strings.Contains(text, secret) || !strings.Contains(text, ErasedText) {
			t.Fatalf("a window after the erasure:\n%s", text)
		}
	}
	ms, _ := e.Messages(k, 0, 1000, []string{"pii", "internal"})
	views, _ := e.Windows(k, []string{"pii", "internal"})
	if b, _ := json.Marshal([]any{ms, views}); bytes.Contains(b, []byte(secret)) {
		t.Fatal("the listing or a kept window still holds the secret")
	}
	if _, _, err := e.Response("t", "resp_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the response quoting the secret: %v", err)
	}
	// The provenance record holds a salted hash, never the text, and the
	// memory still round-trips as a snapshot.
	var buf bytes.Buffer
	root, err := e.ExportBundle(k, &buf, ExportOptions{Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(secret)) {
		t.Fatal("the bundle holds the secret")
	}
	var prov ProvenanceRecord
	for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"type":"provenance"`)) {
			json.Unmarshal(line, &prov)
		}
	}
	salt, _ := hex.DecodeString(prov.Salt)
	sum := sha256.Sum256(append(salt, secret...))
	if prov.Kind != provForget || prov.Reason != "user asked" || prov.Caller != "test" || prov.Match != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("provenance record %+v", prov)
	}
	dst := openWith(t, "", testPolicy(t), 4)
	if res, err := dst.ImportBundle(k, bytes.NewReader(buf.Bytes()), ImportOptions{}); err != nil || res.Root.Hash != root.Hash {
		t.Fatalf("import after an erasure: %v", err)
	}
	// After a restart too.
	e.Close()
	e = openWith(t, dir, testPolicy(t), 4)
	if w := window(t, e, k, "What is my locker code?", nil); strings.Contains(w.Memory, secret) {
		t.Fatal("the secret is back after a restart")
	}
	if n := folderHolds(t, dir, secret); n != 0 {
		t.Fatalf("the data folder holds the secret %d times after a restart", n)
	}
}

func TestEraseWholeMessages(t *testing.T) {
	dir := t.TempDir()
	e := openWith(t, dir, nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	conv := conversation(30, 9)
	const unique = "Quetzalcoatlus-Marmalade"
	conv[5] = msg("user", strings.Repeat("The wagon of "+unique+" waits by the river. ", 12))
	if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	before, _ := e.Stats(k)
	res, err := e.Erase(k, EraseRequest{Messages: []int64{5}, Reason: "mistake"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || res.Blocks < 2 || res.Gists == 0 {
		t.Fatalf("erase: %+v", res)
	}
	if n := folderHolds(t, dir, unique); n != 0 {
		t.Fatalf("the data folder holds the erased message %d times", n)
	}
	ms, _ := e.Messages(k, 5, 1, nil)
	after, _ := e.Stats(k)
	if ms[0].Text != ErasedText || after.Blocks != before.Blocks || after.Messages != before.Messages || after.Tokens >= before.Tokens {
		t.Fatalf("after the erasure: %+v, stats %+v -> %+v", ms[0], before, after)
	}
	// The rest of the tree is where it was: its blocks still spell their
	// messages (a snapshot checks exactly that).
	var buf bytes.Buffer
	if _, err := e.ExportBundle(k, &buf, ExportOptions{Operator: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := openWith(t, "", nil, 4).ImportBundle(k, &buf, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// Erasing again changes nothing more.
	again, err := e.Erase(k, EraseRequest{Messages: []int64{5}})
	if err != nil || again.Blocks != 0 || again.Gists != 0 {
		t.Fatalf("erasing again: %+v %v", again, err)
	}
}

func TestEraseRefusesBadRequests(t *testing.T) {
	e := openWith(t, "", nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	if _, err := e.Prepare(Request{Key: k, Messages: conversation(3, 1), Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]EraseRequest{
		"nothing":           {},
		"both":              {Messages: []int64{1}, Match: "x"},
		"inside the marker": {Match: "erase"},
	} {
		if _, err := e.Erase(k, req); !errors.Is(err, ErrBadErase) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := e.Erase(k, EraseRequest{Messages: []int64{99}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("out of range: %v", err)
	}
	if _, err := e.Erase(Key{Tenant: "t", Context: "nobody"}, EraseRequest{Match: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing context: %v", err)
	}
}

// TestEraseLiteralEditsProperty: eraseLiteral replaces as strings.ReplaceAll
// does, and its edits say exactly where.
func TestEraseLiteralEditsProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		lit := []string{"ab", "aba", "QX-1", "a"}[r.IntN(4)]
		var sb strings.Builder
		for range r.IntN(30) {
			sb.WriteString([]string{"a", "b", "ab", "QX-1", " ", "ba"}[r.IntN(6)])
		}
		old := sb.String()
		text, edits := eraseLiteral(old, lit)
		if text != strings.ReplaceAll(old, lit, ErasedText) || len(edits) != strings.Count(old, lit) {
			t.Fatalf("eraseLiteral(%q, %q) = %q, %d edits", old, lit, text, len(edits))
		}
		for _, ed := range edits {
			if old[ed.oldStart:ed.oldEnd] != lit || text[ed.newStart:ed.newEnd] != ErasedText {
				t.Fatalf("edit %+v of %q in %q -> %q", ed, lit, old, text)
			}
		}
	}
}

package memory

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/bundle"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// testPolicy is the policy of the snapshot tests.
func testPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	pol, err := policy.Compile([]policy.Rule{
		{Name: "emails", Detector: "email", AllowScopes: []string{"pii"}},
		{Name: "internal", Pattern: `(?i)project\s+nightjar`, Action: "exclude", AllowScopes: []string{"internal"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// richContext fills k with what a context can hold: two chats, a system
// prompt, an edit (a superseded branch), a partial reply, a name, raw
// JSON, detected spans, an exclude rule and a tag given after ingest.
func richContext(t testing.TB, e *Engine, k Key, turns int) {
	t.Helper()
	conv := conversation(turns, 5)
	conv[3] = msg("user", "Mail the invoice to bob@example.com please, it is about project Nightjar.")
	conv[4].Name = "helper"
	conv[4].Raw = json.RawMessage(`{"role":"assistant","name":"helper","content":"ok","x_extra":[1,2]}`)
	for i := 2; i <= len(conv); i += 2 {
		w, err := e.Prepare(Request{Key: k, Messages: conv[:i], Budget: 3000, PerMessage: 4, TailPercent: 30})
		if err != nil {
			t.Fatal(err)
		}
		if i == len(conv) {
			if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, msg("assistant", "a reply cut off mid"), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An edit of turn 6 supersedes what followed it.
	edit := append(append([]Message(nil), conv[:min(11, len(conv)-2)]...), msg("user", "Actually, forget that: tell me about the harbor instead."))
	if _, err := e.Prepare(Request{Key: k, Messages: edit, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	// A second chat, on its own thread.
	k2 := k
	k2.Thread = "chat-2"
	if _, err := e.Prepare(Request{Key: k2, Messages: []Message{msg("system", "Be brief."), msg("user", "The ferry leaves at 7:15 from pier 9.")}, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(e.opts.Policy.Rules(), "emails") && turns > 4 {
		if _, err := e.Tag(k, 7, []string{"emails"}, nil, []string{"pii"}); err != nil {
			t.Fatal(err)
		}
	}
}

// testingT is what openWith needs of a *testing.T or a *rapid.T.
type testingT interface {
	Fatal(args ...any)
	Cleanup(func())
}

func openWith(t testingT, dir string, pol *policy.Policy, fanout int) *Engine {
	e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), Policy: pol, Fanout: fanout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func export(t testing.TB, e *Engine, k Key, key ed25519.PrivateKey) ([]byte, bundle.Root) {
	t.Helper()
	var buf bytes.Buffer
	root, err := e.ExportBundle(k, &buf, ExportOptions{SigningKey: key, Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), root
}

// window is a dry-run window of k for a question.
func window(t testing.TB, e *Engine, k Key, q string, scopes []string) *Window {
	t.Helper()
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 1500, PerMessage: 4, TailPercent: 30, DryRun: true, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestSnapshotRoundTripKeepsRoot(t *testing.T) {
	pol := testPolicy(t)
	srcDir := t.TempDir()
	src := openWith(t, srcDir, pol, 4)
	k := Key{Tenant: "acme", Context: "team"}
	richContext(t, src, k, 40)
	// Windows kept make focus telemetry, which travels with the tree.
	ask(t, src, k, "What did we say about the invoice?", 1500)
	ask(t, src, k, "And about the harbor?", 1500)
	src.SettleFocus()
	b, root := export(t, src, k, nil)
	if !bytes.Contains(b, []byte(`{"type":"telemetry","level":`)) {
		t.Fatal("the bundle lacks the focus telemetry")
	}
	// Focus hysteresis lives in memory only: compare with a fresh load.
	src.Close()
	src = openWith(t, srcDir, pol, 4)
	if root.Bytes != int64(len(b)) || len(root.Sections) != 5 {
		t.Fatalf("root %+v for %d bytes", root, len(b))
	}
	// The client's raw JSON, which only the store keeps, travels too.
	if !bytes.Contains(b, []byte(`"x_extra":[1,2]`)) || !bytes.Contains(b, []byte(`"raw_key":"`)) {
		t.Fatal("the bundle lacks the raw JSON or the raw keys of the messages")
	}

	dir := t.TempDir()
	dst := openWith(t, dir, pol, 4)
	k2 := Key{Tenant: "other", Context: "copy"}
	res, err := dst.ImportBundle(k2, bytes.NewReader(b), ImportOptions{Caller: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Root.Hash != root.Hash || res.Rebuilt {
		t.Fatalf("import root %v rebuilt=%v (%s), export root %v", res.Root, res.Rebuilt, res.Why, root)
	}
	b2, root2 := export(t, dst, k2, nil)
	if root2.Hash != root.Hash || !bytes.Equal(b, b2) {
		t.Fatalf("re-export root %v, original %v", root2, root)
	}
	// The same memory: statistics, messages, windows for every scope.
	s1, _ := src.Stats(k)
	s2, _ := dst.Stats(k2)
	s1.Tenant, s1.ID, s1.DiskBytes, s2.Tenant, s2.ID, s2.DiskBytes = "", "", 0, "", "", 0
	if !equalJSON(s1, s2) {
		t.Fatalf("stats differ:\n%+v\n%+v", s1, s2)
	}
	m1, _ := src.Messages(k, 0, 1000, nil)
	m2, _ := dst.Messages(k2, 0, 1000, nil)
	if !equalJSON(m1, m2) {
		t.Fatal("messages differ")
	}
	for _, scopes := range [][]string{nil, {"pii", "internal"}} {
		w1 := window(t, src, k, "What did we say about the invoice and the harbor?", scopes)
		w2 := window(t, dst, k2, "What did we say about the invoice and the harbor?", scopes)
		if w1.Memory != w2.Memory || w1.Tokens != w2.Tokens {
			t.Fatalf("scopes %v: windows differ:\n%s\n---\n%s", scopes, w1.Memory, w2.Memory)
		}
	}
	// And after a restart, from the store.
	dst.Close()
	again := openWith(t, dir, pol, 4)
	if _, root3 := export(t, again, k2, nil); root3.Hash != root.Hash {
		t.Fatal("the root changed after a restart")
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestSnapshotRebuildsDerivedData imports into engines that derive the
// tree differently: the tree is rebuilt from the messages, and brought
// back to the first engine's configuration it is the original again.
func TestSnapshotRebuildsDerivedData(t *testing.T) {
	pol := testPolicy(t)
	a := openWith(t, t.TempDir(), pol, 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(t, a, k, 40)
	b, root := export(t, a, k, nil)

	for name, eng := range map[string]*Engine{
		"fanout":    openWith(t, t.TempDir(), pol, 8),
		"no policy": openWith(t, t.TempDir(), nil, 4),
	} {
		res, err := eng.ImportBundle(k, bytes.NewReader(b), ImportOptions{})
		if err != nil {
			t.Fatal(name, err)
		}
		if !res.Rebuilt || res.Why == "" {
			t.Fatalf("%s: not rebuilt", name)
		}
		st, _ := eng.Stats(k)
		if want := map[string]int{"fanout": 8, "no policy": 4}[name]; st.NodesPerLevel[1] != st.Blocks/want {
			t.Fatalf("%s: %v nodes per level for %d blocks", name, st.NodesPerLevel, st.Blocks)
		}
		m1, _ := a.Messages(k, 0, 1000, []string{"pii", "internal"})
		m2, _ := eng.Messages(k, 0, 1000, []string{"pii", "internal"})
		if name == "no policy" {
			// Tags are what a policy detects: none without rules. A message
			// tagged whole with a rule this engine lacks stays withheld: no
			// one can be cleared for an unknown rule.
			if m2[7].Text != WithheldText {
				t.Fatalf("no policy: the message tagged whole is shown: %q", m2[7].Text)
			}
			for i := range m1 {
				m1[i].Tags, m2[i].Tags = nil, nil
			}
			m1[7].Text = WithheldText
		}
		if !equalJSON(m1, m2) {
			for i := range m1 {
				if !equalJSON(m1[i], m2[i]) {
					t.Logf("%+v\n%+v", m1[i], m2[i])
				}
			}
			t.Fatalf("%s: messages differ", name)
		}
		if name == "no policy" {
			// Without the rules, nothing is filtered; the manual tag stays on the message.
			if w := window(t, eng, k, "Where does the invoice go?", nil); !strings.Contains(w.Memory, "bob@example.com") {
				t.Fatalf("no policy: the e-mail is missing:\n%s", w.Memory)
			}
			continue
		}
		if w := window(t, eng, k, "Where does the invoice go for project Nightjar?", nil); strings.Contains(w.Memory, "bob@example.com") || strings.Contains(w.Memory, "Nightjar") {
			t.Fatalf("%s: the rebuilt tree leaks:\n%s", name, w.Memory)
		}
		// Back into an engine configured like the first: the original root.
		b2, root2 := export(t, eng, k, nil)
		if root2.Hash == root.Hash {
			t.Fatalf("%s: another engine's tree kept the root", name)
		}
		back := openWith(t, t.TempDir(), pol, 4)
		if _, err := back.ImportBundle(k, bytes.NewReader(b2), ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, root3 := export(t, back, k, nil); root3.Hash != root.Hash {
			t.Fatalf("%s: rebuilt with the first engine's configuration, the root is %v, not %v", name, root3, root)
		}
	}
}

// storeKeys lists every stored key that names the context.
func storeKeys(t testing.TB, e *Engine, k Key) []string {
	var out []string
	suffix := ":" + store.Key(k.Tenant, k.Context)
	e.st.Scan("", func(key, _ string) bool {
		if strings.Contains(key, suffix+":") || strings.HasSuffix(key, suffix) {
			out = append(out, key)
		}
		return true
	})
	return out
}

// TestSnapshotTamperLeavesNothing changes every byte of a signed bundle
// (and truncates it everywhere): every import fails with a clear error and
// stores nothing.
func TestSnapshotTamperLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive tampering is slow")
	}
	src := openWith(t, "", nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(t, src, k, 3)
	_, priv, _ := ed25519.GenerateKey(nil)
	b, _ := export(t, src, k, priv)
	dst := openWith(t, "", nil, 4)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		m := bytes.Clone(b)
		m[i] ^= byte(1 + r.IntN(255))
		checkRefused(t, dst, k, m, i)
	}
	for n := 0; n < len(b); n += 1 + n/8 {
		checkRefused(t, dst, k, b[:n], -n)
	}
}

func checkRefused(t *testing.T, e *Engine, k Key, b []byte, what int) {
	t.Helper()
	_, err := e.ImportBundle(k, bytes.NewReader(b), ImportOptions{})
	if err == nil {
		t.Fatalf("change %d accepted", what)
	}
	if !errors.Is(err, bundle.ErrTampered) && !errors.Is(err, bundle.ErrTruncated) && !errors.Is(err, bundle.ErrFormat) &&
		!errors.Is(err, bundle.ErrSignature) {
		t.Fatalf("change %d: unclear error %v", what, err)
	}
	if keys := storeKeys(t, e, k); len(keys) > 0 {
		t.Fatalf("change %d left %v", what, keys)
	}
}

// FuzzImportTamper flips one byte of a signed bundle: the import fails
// and leaves nothing.
func FuzzImportTamper(f *testing.F) {
	src := openWith(f, "", nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(f, src, k, 6)
	_, priv, _ := ed25519.GenerateKey(nil)
	b, _ := export(f, src, k, priv)
	dst := openWith(f, "", nil, 4)
	f.Add(uint(10), byte(1))
	f.Add(uint(len(b)/2), byte(0x20))
	f.Add(uint(len(b)-3), byte(0xff))
	f.Fuzz(func(t *testing.T, pos uint, x byte) {
		if x == 0 {
			return
		}
		m := bytes.Clone(b)
		m[pos%uint(len(m))] ^= x
		checkRefused(t, dst, k, m, int(pos%uint(len(m))))
	})
}

func TestImportRefusesExistingContextAndUntrustedSigner(t *testing.T) {
	e := openWith(t, t.TempDir(), nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(t, e, k, 6)
	pub, priv, _ := ed25519.GenerateKey(nil)
	b, root := export(t, e, k, priv)
	if !root.Signer.Equal(pub) {
		t.Fatal("not signed")
	}
	before, _ := e.Stats(k)
	if _, err := e.ImportBundle(k, bytes.NewReader(b), ImportOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("import over an existing context: %v", err)
	}
	if after, _ := e.Stats(k); !equalJSON(before, after) {
		t.Fatal("the existing context changed")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	k2 := Key{Tenant: "t", Context: "c2"}
	if _, err := e.ImportBundle(k2, bytes.NewReader(b), ImportOptions{Trusted: []ed25519.PublicKey{other}}); !errors.Is(err, bundle.ErrSignature) {
		t.Fatalf("untrusted signer: %v", err)
	}
	if keys := storeKeys(t, e, k2); len(keys) > 0 {
		t.Fatalf("left %v", keys)
	}
	res, err := e.ImportBundle(k2, bytes.NewReader(b), ImportOptions{Trusted: []ed25519.PublicKey{other, pub}})
	if err != nil || !res.Root.Signer.Equal(pub) {
		t.Fatalf("trusted signer: %v", err)
	}
}

// TestImportRefusesInconsistentContent writes bundles whose hashes are
// all right but whose content is not a MegaContext.
func TestImportRefusesInconsistentContent(t *testing.T) {
	e := openWith(t, "", nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(t, e, k, 20)
	b, _ := export(t, e, k, nil)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	records := lines[:len(lines)-2] // without manifest and root
	rewrite := func(edit func(typ string, v map[string]any) bool) []byte {
		var buf bytes.Buffer
		w := bundle.NewWriter(&buf, nil)
		for _, l := range records {
			var v map[string]any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatal(err)
			}
			if edit(v["type"].(string), v) {
				l = string(mustMarshalOrdered(t, l, v))
			}
			if err := w.WriteLine([]byte(l)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	cases := map[string]func(typ string, v map[string]any) bool{
		"block text differs from its message": func(typ string, v map[string]any) bool {
			if typ == "message" && v["seq"].(float64) == 3 {
				v["text"] = "something else entirely"
				return true
			}
			return false
		},
		"a gist's hash": func(typ string, v map[string]any) bool {
			if typ == "node" && v["level"].(float64) == 1 && v["index"].(float64) == 0 {
				v["hash"] = strings.Repeat("0", 64)
				return true
			}
			return false
		},
		"raw JSON nested too deep": func(typ string, v map[string]any) bool {
			if _, ok := v["raw"]; typ == "message" && ok {
				var deep any = "x"
				for range 200 {
					deep = []any{deep}
				}
				v["raw"] = map[string]any{"role": "user", "content": deep}
				return true
			}
			return false
		},
		"a message out of order": func(typ string, v map[string]any) bool {
			if typ == "message" && v["seq"].(float64) == 5 {
				v["seq"] = 6
				return true
			}
			return false
		},
	}
	for name, edit := range cases {
		_, err := e.ImportBundle(Key{Tenant: "t", Context: "x"}, bytes.NewReader(rewrite(edit)), ImportOptions{})
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v", name, err)
		}
		if keys := storeKeys(t, e, Key{Tenant: "t", Context: "x"}); len(keys) > 0 {
			t.Fatalf("%s: left %v", name, keys)
		}
	}
}

// mustMarshalOrdered re-encodes an edited record keeping the original
// member order (so only the edit makes it differ).
func mustMarshalOrdered(t testing.TB, orig string, v map[string]any) []byte {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(orig))
	dec.Token()
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	for dec.More() {
		tok, _ := dec.Token()
		name := tok.(string)
		var skip json.RawMessage
		dec.Decode(&skip)
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(name)
		vb, _ := json.Marshal(v[name])
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func TestInterruptedImportIsRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	e := openWith(t, dir, nil, 4)
	done, half := Key{Tenant: "t", Context: "done"}, Key{Tenant: "t", Context: "half"}
	richContext(t, e, done, 6)
	b, _ := export(t, e, done, nil)
	if err := e.Delete(done); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ImportBundle(done, bytes.NewReader(b), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// A crash after the import stored its header, before the marker went:
	// and another one halfway through its records.
	e.st.Put(store.KV{Key: singleKey(kindImport, done), Value: "{}"},
		store.KV{Key: singleKey(kindImport, half), Value: "{}"},
		store.KV{Key: msgKey(half, 0), Value: `{"seq":0}`},
		store.KV{Key: nodeKey(half, 0, 0), Value: `{}`})
	e.Close()
	e = openWith(t, dir, nil, 4)
	if keys := storeKeys(t, e, half); len(keys) > 0 {
		t.Fatalf("the interrupted import left %v", keys)
	}
	if _, found, _ := e.st.Get(singleKey(kindImport, done)); found {
		t.Fatal("the completed import's marker stayed")
	}
	if st, err := e.Stats(done); err != nil || st.Messages == 0 {
		t.Fatalf("the completed import is gone: %v", err)
	}
}

func TestExportNeedsClearanceForEveryRule(t *testing.T) {
	e := openWith(t, "", testPolicy(t), 4)
	k := Key{Tenant: "t", Context: "c"}
	richContext(t, e, k, 6)
	for _, tc := range []struct {
		scopes []string
		ok     bool
	}{{nil, false}, {[]string{"pii"}, false}, {[]string{"pii", "internal"}, true}} {
		_, err := e.ExportBundle(k, io.Discard, ExportOptions{Scopes: tc.scopes})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("scopes %v: %v", tc.scopes, err)
		}
	}
}

// TestSnapshotRecordsCoverStoredRecords fails when a stored record gains a
// field that bundles do not carry: add it to snapNode or snapMessage (or
// to the derived fields below, with how import derives it).
func TestSnapshotRecordsCoverStoredRecords(t *testing.T) {
	derived := map[string]bool{"First": true, "Last": true, "Tokens": true, "rawSaved": true, "rawNone": true, "raw": true}
	for _, c := range []struct{ stored, snap any }{{tree.Node{}, snapNode{}}, {msgRecord{}, snapMessage{}}} {
		st, sn := reflect.TypeOf(c.stored), reflect.TypeOf(c.snap)
		for i := range st.NumField() {
			f := st.Field(i)
			if _, ok := sn.FieldByName(f.Name); !ok && !(st == reflect.TypeOf(msgRecord{}) && derived[f.Name]) {
				t.Errorf("%s.%s is not in %s", st.Name(), f.Name, sn.Name())
			}
		}
	}
}

// TestImportNeverTrustsSpans: a bundle whose header claims the importing
// engine's policy but whose tree carries no span for a secret (here made
// by the exporter of an engine without the rule that says it has it) is
// scanned again on import: the address and the excluded message are
// hidden in every block, every gist above them is rebuilt from redacted
// text, at rest as in recall.
func TestImportNeverTrustsSpans(t *testing.T) {
	pol := testPolicy(t)
	crafted := openWith(t, t.TempDir(), nil, 4)
	crafted.policyPrint = pol.Fingerprint() // what the bundle will claim
	k := Key{Tenant: "acme", Context: "team"}
	richContext(t, crafted, k, 40)
	b, _ := export(t, crafted, k, nil)

	dst := openWith(t, t.TempDir(), pol, 4)
	res, err := dst.ImportBundle(k, bytes.NewReader(b), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rebuilt {
		t.Fatalf("the bundle's derivation does not match (%s): the test does not reach adoption", res.Why)
	}
	secrets := []string{"bob@example.com", "Nightjar"} // a redact and an exclude rule's
	if w := window(t, dst, k, "Where should the invoice about the project be mailed?", nil); strings.Contains(w.Memory, secrets[0]) || strings.Contains(w.Memory, secrets[1]) {
		t.Errorf("recall shows the secret:\n%s", w.Memory)
	}
	c, err := dst.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.mu.Unlock()
	for l := 0; l < c.tree.Height(); l++ {
		for i := 0; i < c.tree.LevelLen(l); i++ {
			n := c.tree.Node(l, i)
			shown := n.Text + " " + n.Short
			if l == 0 {
				shown, _, _ = pol.Apply(n.Text, toPolicySpans(n.Spans), nil)
			}
			if strings.Contains(shown, secrets[0]) || strings.Contains(shown, secrets[1]) {
				t.Errorf("node %d/%d shows the secret: %q", l, i, shown)
			}
		}
	}
}

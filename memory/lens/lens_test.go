package lens

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/megacontext/megacontext/memory/glove"
)

func TestTerms(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"The meetings moved to Tuesday.", []string{"meet", "move", "tuesday"}},
		{"code ZX-4471-QK please", []string{"code", "zx-4471-qk", "zx", "4471", "qk"}},
		{"", nil},
		{"a an the", nil},
		{"Lily's cat", []string{"lily", "cat"}},
		{"version 1.2.3", []string{"version", "1.2.3", "1", "2", "3"}},
	}
	for _, c := range cases {
		if got := Terms(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Terms(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStemMatchesInflections(t *testing.T) {
	pairs := [][2]string{{"meetings", "meeting"}, {"moved", "move"}, {"stories", "story"}, {"running", "run"}, {"parks", "park"}}
	for _, p := range pairs {
		if Stem(p[0]) != Stem(p[1]) {
			t.Errorf("Stem(%q)=%q != Stem(%q)=%q", p[0], Stem(p[0]), p[1], Stem(p[1]))
		}
	}
}

func TestScoreRanksRareTermHigher(t *testing.T) {
	x := NewIndex()
	docs := []string{
		"we talked about the weather and the garden",
		"the garden needs water",
		"my locker code is ZX-4471-QK",
		"the weather is nice in the garden",
	}
	for _, d := range docs {
		x.Add(d)
	}
	s := x.Score(Query("what is my locker code?", 1), x.Len(), 0)
	top := Top(s, 1)
	if len(top) != 1 || top[0] != 2 {
		t.Fatalf("top = %v, scores %v", top, s)
	}
	// Limit excludes blocks at or after it.
	s = x.Score(Query("locker", 1), 2, 0)
	if len(s) != 0 {
		t.Fatalf("limit ignored: %v", s)
	}
}

func FuzzTerms(f *testing.F) {
	f.Add("ZX-4471-QK and Lily's 1.2.3 café")
	f.Add("--__..")
	f.Fuzz(func(t *testing.T, s string) {
		all := Terms(s)
		for _, term := range all {
			if term == "" {
				t.Fatalf("empty term from %q", s)
			}
		}
		// TermSeq yields the same terms, and stopping it early, a prefix.
		for stop := range len(all) + 1 {
			var got []string
			for term := range TermSeq(s) {
				if len(got) == stop {
					break
				}
				got = append(got, term)
			}
			if !slices.Equal(got, all[:stop]) {
				t.Fatalf("TermSeq(%q) stopped after %d: %q, Terms %q", s, stop, got, all)
			}
		}
	})
}

func TestStem(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"meetings", "meet"},
		{"moved", "move"}, {"moving", "move"}, {"move", "move"},
		{"care", "care"}, {"cared", "care"}, {"caring", "care"}, {"cars", "car"},
		{"hoped", "hope"}, {"hopped", "hop"}, {"hopping", "hop"},
		{"created", "creat"}, {"create", "creat"},
		{"purchased", "purchas"}, {"purchase", "purchas"},
		{"policies", "policy"}, {"classes", "class"}, {"status", "status"},
		{"ZX-4471", "ZX-4471"}, {"bus", "bus"},
	} {
		if got := Stem(tc.in); got != tc.want {
			t.Errorf("Stem(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRewriteMatchesFreshIndex: rewriting blocks gives the index a fresh
// build with the new texts would have: same scores for every term.
func TestRewriteMatchesFreshIndex(t *testing.T) {
	texts := []string{"the river bank at dawn", "a red kite over the river", "code QX-4471 for the locker", "dawn chorus", "kite string and locker key"}
	x := NewIndex()
	for _, s := range texts {
		x.Add(s)
	}
	x.Rewrite(1, texts[1], "[pruned]")
	x.Rewrite(4, texts[4], "[pruned]")
	x.Rewrite(9, "", "out of range")
	want := NewIndex()
	for i, s := range texts {
		if i == 1 || i == 4 {
			s = "[pruned]"
		}
		want.Add(s)
	}
	q := Query("river kite locker dawn pruned qx-4471 key string", 1)
	got, exp := x.Score(q, 10, 0), want.Score(q, 10, 0)
	if len(got) != len(exp) {
		t.Fatalf("scores %v, fresh index %v", got, exp)
	}
	for b, s := range exp {
		if math.Abs(got[b]-s) > 1e-12 {
			t.Fatalf("block %d: %v, fresh index %v", b, got[b], s)
		}
	}
	if x.Bytes() != want.Bytes() {
		t.Errorf("bytes %d, fresh index %d", x.Bytes(), want.Bytes())
	}
}

// tinyVectors converts a handful of words with the given vectors (wink's
// JSON layout) and maps them.
func tinyVectors(t *testing.T, words []string, vecs [][]float64) *glove.Vectors {
	t.Helper()
	m := map[string][]float64{}
	for i, w := range words {
		n := 0.0
		for _, x := range vecs[i] {
			n += x * x
		}
		m[w] = append(slices.Clone(vecs[i]), math.Sqrt(n), float64(i))
	}
	js, err := json.Marshal(map[string]any{"precision": 8, "dimensions": len(vecs[0]), "size": len(words), "words": words, "vectors": m, "unkVector": make([]int, len(vecs[0])+2)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	if err := glove.Convert(bytes.NewReader(js), &out, glove.ConvertOptions{Clusters: 2}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, glove.FileName), out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := glove.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// TestRewriteReplacesSentenceVector: a rewritten (pruned) block is no
// longer similar by meaning to what it said, and a name it alone wrote is
// a name no more.
func TestRewriteReplacesSentenceVector(t *testing.T) {
	v := tinyVectors(t, []string{"boat", "ship", "bread", "pruned"}, [][]float64{{1, 0.1, 0, 0}, {0.9, 0.2, 0, 0}, {0, 0, 1, 0.1}, {0, 0.1, 0, 1}})
	x := NewIndex()
	x.UseVectors(v)
	x.Add("we sailed the boat with Damien")
	x.Add("fresh bread today")
	if sim := x.Semantic().Similar("ship", 2, 2, 0.5, nil); sim[0] == 0 {
		t.Fatalf("before the rewrite the boat block is not similar to ship: %v", sim)
	}
	if !x.Name("damien") {
		t.Fatal("damien is not a name before the rewrite")
	}
	x.Rewrite(0, "we sailed the boat with Damien", "[pruned]")
	if sim := x.Semantic().Similar("ship", 2, 2, 0.5, nil); sim[0] != 0 {
		t.Errorf("the pruned block is still similar to ship: %v", sim)
	}
	if x.Name("damien") {
		t.Error("damien is still a name after the only block naming it was pruned")
	}
}

// TestNear: the history's words near a described noun come with the
// similarity times the noun's weight; the noun itself, far words, names
// and words of skip do not.
func TestNear(t *testing.T) {
	v := tinyVectors(t, []string{"manager", "boss", "bread", "chief", "gaffer"},
		[][]float64{{1, 0.1, 0, 0}, {0.95, 0.2, 0, 0}, {0, 0, 1, 0.1}, {0.9, 0.25, 0, 0}, {0.92, 0.22, 0, 0}})
	x := NewIndex()
	x.UseVectors(v)
	x.Add("my manager moved the meeting")
	x.Add("my boss is Zane now")
	x.Add("fresh bread today")
	x.Add("Gaffer Smith called") // only capitalized: a name
	x.Add("the chief said so")
	got := map[string]float64{}
	for _, tm := range x.Semantic().Near([]Term{{Text: "manager", Weight: 0.5}}, DefaultSoftOptions, map[string]bool{"chief": true}) {
		got[tm.Text] = tm.Weight
	}
	if w, ok := got["boss"]; !ok || w <= 0 || w > 0.5 {
		t.Errorf("boss near manager at weight 0.5: got %v", got)
	}
	for _, no := range []string{"manager", "bread", "gaffer", "chief"} {
		if _, ok := got[no]; ok {
			t.Errorf("%s is near manager: %v", no, got)
		}
	}
	if n := x.Semantic().Near([]Term{{Text: "absent", Weight: 1}}, DefaultSoftOptions, nil); len(n) != 0 {
		t.Errorf("a term the history lacks brings %v", n)
	}
	var none *Semantic
	if n := none.Near([]Term{{Text: "manager", Weight: 1}}, DefaultSoftOptions, nil); n != nil {
		t.Errorf("no vectors: %v", n)
	}
}

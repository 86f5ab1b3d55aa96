package qvec

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randomUnit(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	var s float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		s += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 64, 384, 1024} {
		v := randomUnit(r, n)
		q := Quantize(v)
		d := q.Dequantize()
		for i := range v {
			if e := math.Abs(float64(v[i] - d[i])); e > float64(q.Scale)/2+1e-7 {
				t.Fatalf("n=%d element %d: error %g > scale/2 %g", n, i, e, q.Scale/2)
			}
		}
		got, err := Decode(q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.Scale != q.Scale || len(got.Data) != len(q.Data) {
			t.Fatalf("decode: %v vs %v", got, q)
		}
		for i := range q.Data {
			if got.Data[i] != q.Data[i] {
				t.Fatalf("decode element %d", i)
			}
		}
		if len(q.Encode()) != 4+n {
			t.Fatalf("encoding of %d elements is %d bytes", n, len(q.Encode()))
		}
	}
}

func TestCosineClose(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	worst := 0.0
	for range 200 {
		a, b := randomUnit(r, 384), randomUnit(r, 384)
		// Mix to get a spread of similarities.
		for i := range b {
			b[i] = 0.7*a[i] + 0.3*b[i]
		}
		exact := CosineFloat32(a, b)
		qa, qb := Quantize(a), Quantize(b)
		worst = math.Max(worst, math.Abs(float64(Cosine(qa, qb)-exact)))
		if d := math.Abs(float64(Dot(qa, qb)) - float64(exact)*l2(b)); d > 0.02 {
			t.Fatalf("Dot off by %g", d)
		}
	}
	if worst > 0.01 {
		t.Fatalf("quantized cosine off by up to %g", worst)
	}
	t.Logf("worst cosine error over 200 pairs of 384 dims: %.5f", worst)
}

func l2(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestEdgeCases(t *testing.T) {
	z := Quantize(make([]float32, 8))
	if z.Scale != 0 || Cosine(z, z) != 0 {
		t.Fatalf("zero vector: %+v", z)
	}
	if q := Quantize(nil); len(q.Data) != 0 {
		t.Fatal("nil vector")
	}
	if _, err := Decode([]byte{1, 2}); !errors.Is(err, ErrEncoding) {
		t.Fatalf("short input: %v", err)
	}
	nan := []byte{0, 0, 0xc0, 0x7f, 1}
	if _, err := Decode(nan); !errors.Is(err, ErrEncoding) {
		t.Fatalf("NaN scale: %v", err)
	}
	q := Quantize([]float32{1, -1, 0.5})
	if q.Data[0] != 127 || q.Data[1] != -127 || q.Data[2] != 64 {
		t.Fatalf("Quantize = %v", q.Data)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on length mismatch")
		}
	}()
	Cosine(q, Quantize([]float32{1}))
}

func BenchmarkCosine384(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	qa, qb := Quantize(randomUnit(r, 384)), Quantize(randomUnit(r, 384))
	for b.Loop() {
		Cosine(qa, qb)
	}
}

// TestNormalize: a usable vector comes out of unit length pointing the
// same way; a zero vector, or one holding a NaN or an infinity, is
// refused and left as it was.
func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []float32
		ok   bool
	}{
		{"3-4", []float32{3, 4}, true},
		{"negative", []float32{0, -2, 0}, true},
		{"zero", []float32{0, 0}, false},
		{"empty", nil, false},
		{"NaN", []float32{1, float32(math.NaN())}, false},
		{"Inf", []float32{float32(math.Inf(1)), 1}, false},
	} {
		before := append([]float32(nil), tc.v...)
		if got := Normalize(tc.v); got != tc.ok {
			t.Errorf("%s: Normalize = %v, want %v", tc.name, got, tc.ok)
			continue
		}
		if !tc.ok {
			for i := range before {
				if math.Float32bits(before[i]) != math.Float32bits(tc.v[i]) {
					t.Errorf("%s: refused vector changed: %v -> %v", tc.name, before, tc.v)
				}
			}
			continue
		}
		var n float64
		for i, x := range tc.v {
			n += float64(x) * float64(x)
			if (x < 0) != (before[i] < 0) || (x == 0) != (before[i] == 0) {
				t.Errorf("%s: direction changed: %v -> %v", tc.name, before, tc.v)
			}
		}
		if math.Abs(n-1) > 1e-6 {
			t.Errorf("%s: squared norm %v after Normalize", tc.name, n)
		}
	}
}

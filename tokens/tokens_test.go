package tokens

import "testing"

func TestEstimateTable(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 2},
		{"hello", 3},
		{"hello world", 5},
		{"12345", 6},
		{"a,b", 4},
		{"  ", 2},
		{"é", 2},
		{"日本", 5},
	}
	for _, c := range cases {
		if got := (Estimate{}).Count(c.in); got != c.want {
			t.Errorf("Count(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

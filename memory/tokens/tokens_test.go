package tokens

import "testing"

func TestEstimateTable(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"hello", 2},
		{"hello world", 4},
		{"12345", 3},
		{"a,b", 3},
		{"  ", 1},
		{"é", 1},
		{"日本", 4},
	}
	for _, c := range cases {
		if got := (Estimate{}).Count(c.in); got != c.want {
			t.Errorf("Count(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

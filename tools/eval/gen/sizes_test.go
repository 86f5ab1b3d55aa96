package gen

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "32k,128k,512k", want: []int{32768, 131072, 524288}},
		{in: "8192", want: []int{8192}},
		{in: " 1K , 2m ,3000", want: []int{1024, 2 << 20, 3000}},
		{in: "1M", want: []int{1 << 20}},
		{in: "", wantErr: "empty size list"},
		{in: "  ", wantErr: "empty size list"},
		{in: "32k,,64k", wantErr: `size 2 (""): empty size`},
		{in: "32k,", wantErr: "size 2"},
		{in: "k", wantErr: "digits"},
		{in: "0", wantErr: "positive"},
		{in: "0k", wantErr: "positive"},
		{in: "-5", wantErr: "digits"},
		{in: "+5", wantErr: "digits"},
		{in: "1.5k", wantErr: "digits"},
		{in: "32kb", wantErr: "digits"},
		{in: "32g", wantErr: "digits"},
		{in: "99999999999999999999", wantErr: "digits"},
		{in: "4096m", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSizes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSizes(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseSizes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{32768, "32k"}, {524288, "512k"}, {1 << 20, "1m"}, {3 << 20, "3m"}, {1536 << 10, "1536k"},
		{1000, "1000"}, {8193, "8193"}, {0, "0"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
		if tt.n > 0 {
			back, err := ParseSizes(FormatSize(tt.n))
			if err != nil || len(back) != 1 || back[0] != tt.n {
				t.Errorf("ParseSizes(FormatSize(%d)) = %v, %v", tt.n, back, err)
			}
		}
	}
}

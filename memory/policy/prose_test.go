package policy

import (
	"go/scanner"
	"go/token"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// goDocProse returns paragraphs of English prose from the Go distribution:
// the comments of its non-test source files (outside testdata) and the
// files of $GOROOT/doc. It returns nil when the sources are not installed.
func goDocProse(tb testing.TB) []string {
	tb.Helper()
	root := runtime.GOROOT()
	var paras []string
	add := func(lines []string) {
		if len(lines) > 0 {
			paras = append(paras, strings.Join(lines, "\n"))
		}
	}
	_ = filepath.WalkDir(filepath.Join(root, "src"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var sc scanner.Scanner
		fset := token.NewFileSet()
		sc.Init(fset.AddFile(path, -1, len(src)), src, nil, scanner.ScanComments)
		var para []string
		lastLine := -2
		for {
			pos, tok, lit := sc.Scan()
			if tok == token.EOF {
				break
			}
			if tok != token.COMMENT {
				continue
			}
			line := fset.Position(pos).Line
			if line != lastLine+1 {
				add(para)
				para = nil
			}
			lastLine = line + strings.Count(lit, "\n")
			lit = strings.TrimPrefix(strings.TrimPrefix(lit, "//"), "/*")
			para = append(para, strings.TrimSuffix(strings.TrimSpace(lit), "*/"))
		}
		add(para)
		return nil
	})
	docs, _ := filepath.Glob(filepath.Join(root, "doc", "*"))
	for _, path := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for p := range strings.SplitSeq(string(b), "\n\n") {
			paras = append(paras, p)
		}
	}
	return paras
}

// detectorHitRates scans texts with one rule per built-in detector and
// returns, per detector, the number of hits, the fraction of texts with at
// least one hit, and up to max examples of matched strings.
func detectorHitRates(texts []string, max int) (hits map[string]int, rate map[string]float64, examples map[string][]string) {
	p, err := Compile(DefaultRules())
	if err != nil {
		panic(err)
	}
	hits, rate, examples = map[string]int{}, map[string]float64{}, map[string][]string{}
	for _, t := range texts {
		seen := map[string]bool{}
		for _, s := range p.Scan(t) {
			if plausiblyReal(s.Rule, t[s.Start:s.End]) {
				s.Rule += "(real)"
			}
			hits[s.Rule]++
			if !seen[s.Rule] {
				seen[s.Rule] = true
				rate[s.Rule]++
			}
			if len(examples[s.Rule]) < max {
				examples[s.Rule] = append(examples[s.Rule], t[s.Start:s.End])
			}
		}
	}
	for k := range rate {
		rate[k] /= float64(len(texts))
	}
	return hits, rate, examples
}

// TestFalsePositiveRateGoDocs measures how often each detector fires on the
// prose of the Go distribution's comments and documentation, where nearly
// every hit is a false positive (the e-mail addresses and IP addresses it
// does hold are listed for review). Run with -v to see the numbers.
func TestFalsePositiveRateGoDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the Go distribution's sources")
	}
	paras := goDocProse(t)
	if len(paras) < 1000 {
		t.Skip("Go sources not installed")
	}
	hits, rate, examples := detectorHitRates(paras, 40)
	mb := float64(totalLen(paras)) / 1e6
	t.Logf("prose: %d paragraphs, %.1f MB", len(paras), mb)
	for _, d := range Detectors() {
		if n := hits[d+"(real)"]; n > 0 {
			t.Logf("%-12s %d more hits look real (see plausiblyReal), not counted", d, n)
		}
		t.Logf("%-12s false positives=%5d  per MB=%7.3f  paragraphs with a hit=%.5f%%", d, hits[d], float64(hits[d])/mb, 100*rate[d])
	}
	for _, d := range Detectors() {
		ex := examples[d]
		if len(ex) == 0 {
			continue
		}
		sort.Strings(ex)
		ex = compactStrings(ex)
		t.Logf("%s examples: %q", d, ex)
	}
}

// plausiblyReal reports whether a hit in the Go documentation is a real
// instance rather than a false positive: IPv6 addresses and IPv4 addresses
// of private, loopback and documentation ranges, and e-mail addresses
// under common top-level domains.
func plausiblyReal(rule, m string) bool {
	switch rule {
	case DetectorIPAddress:
		a, err := netip.ParseAddr(m)
		if err != nil {
			return false
		}
		for _, pfx := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "255.255.255.255/32"} {
			if netip.MustParsePrefix(pfx).Contains(a) {
				return true
			}
		}
		return a.Is6() || a.IsPrivate() || a.IsLoopback() || a.IsUnspecified()
	case DetectorEmail:
		tld := m[strings.LastIndexByte(m, '.')+1:]
		switch tld {
		case "com", "net", "org", "edu", "gov", "io", "dev", "be", "br", "uk", "de", "fr", "jp", "ch", "au", "ca":
			return true
		}
	}
	return false
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// multilingualProse returns the paragraphs of the UTF-8 sample texts of
// golang.org/x/text (French, Japanese, Korean, simplified and traditional
// Chinese) from the module cache, or nil when they are not there.
func multilingualProse(tb testing.TB) []string {
	tb.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/text").Output()
	if err != nil {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "encoding", "testdata", "*-utf-8.txt"))
	var paras []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for p := range strings.SplitSeq(string(b), "\n") {
			if strings.TrimSpace(p) != "" {
				paras = append(paras, p)
			}
		}
	}
	return paras
}

// TestFalsePositiveRateMultilingual measures how often each detector fires
// on non-English prose (mostly non-ASCII: fullwidth punctuation,
// ideographic full stops, accented letters), where the normalized view
// (NFKC, dots and dashes unified) has the most to rewrite. Every hit is a
// false positive. Run with -v to see the numbers.
func TestFalsePositiveRateMultilingual(t *testing.T) {
	if testing.Short() {
		t.Skip("reads golang.org/x/text's sample texts")
	}
	paras := multilingualProse(t)
	if len(paras) < 100 {
		t.Skip("golang.org/x/text's sample texts are not in the module cache")
	}
	hits, rate, examples := detectorHitRates(paras, 20)
	t.Logf("multilingual prose: %d paragraphs, %.0f kB", len(paras), float64(totalLen(paras))/1e3)
	for _, d := range Detectors() {
		t.Logf("%-12s false positives=%4d  paragraphs with a hit=%.3f%%", d, hits[d], 100*rate[d])
		if len(examples[d]) > 0 {
			t.Logf("%s examples: %q", d, examples[d])
		}
	}
}

// totalLen is the summed length of texts.
func totalLen(texts []string) int {
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	return n
}

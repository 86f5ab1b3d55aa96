package gen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Corpus is the prose that fills generated histories: clean English
// sentences grouped by topic, in a deterministic order.
type Corpus struct {
	// Source describes where the prose comes from, e.g.
	// "go1.26.8 source comments".
	Source string
	// Version identifies the exact source (for the Go corpus, the
	// toolchain version from $GOROOT/VERSION). Output is reproducible only
	// for equal versions.
	Version string
	// Topics are the groups of sentences, e.g. one per Go package.
	Topics []Topic
}

// Topic is a group of related sentences.
type Topic struct {
	// Name names the topic, e.g. the import path "net/http".
	Name string
	// Sentences are in source order, each unique within the corpus.
	Sentences []string
}

// Size returns the number of sentences and their total bytes.
func (c *Corpus) Size() (sentences, bytes int) {
	for _, t := range c.Topics {
		sentences += len(t.Sentences)
		for _, s := range t.Sentences {
			bytes += len(s)
		}
	}
	return sentences, bytes
}

// GOROOT returns the Go root whose sources the default corpus is harvested
// from: $GOROOT if set, else what `go env GOROOT` prints.
func GOROOT() (string, error) {
	if r := os.Getenv("GOROOT"); r != "" {
		return r, nil
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("gen: finding GOROOT (set $GOROOT or put go on $PATH): %w", err)
	}
	r := strings.TrimSpace(string(out))
	if r == "" {
		return "", fmt.Errorf("gen: `go env GOROOT` printed nothing")
	}
	return r, nil
}

// DefaultCorpus loads the Go standard library corpus of [GOROOT].
func DefaultCorpus() (*Corpus, error) {
	root, err := GOROOT()
	if err != nil {
		return nil, err
	}
	return GoSourceCorpus(root)
}

// skipDirs are source directories whose comments are not project prose.
var skipDirs = map[string]bool{"testdata": true, "vendor": true}

// GoSourceCorpus harvests English sentences from the comments of the Go
// distribution's own sources under goroot/src (standard library, internal
// packages and commands; about 3.6 MB of prose for Go 1.26): every
// directory but vendor and testdata ones, files in lexical order, test and
// generated files excluded, one topic per directory. Paragraphs that are
// code blocks, lists, headings or deprecation notes are dropped, doc links
// lose their brackets, and only sentences that read as plain English prose
// are kept, each once (first occurrence wins). It takes about two seconds.
func GoSourceCorpus(goroot string) (*Corpus, error) {
	src := filepath.Join(goroot, "src")
	version := "unknown"
	if b, err := os.ReadFile(filepath.Join(goroot, "VERSION")); err == nil {
		version, _, _ = strings.Cut(string(b), "\n")
		version = strings.TrimSpace(version)
	}
	c := &Corpus{Source: version + " source comments", Version: version}
	seen := make(map[string]bool)
	byPkg := make(map[string]int) // import path → index in c.Topics
	fset := token.NewFileSet()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != src && (skipDirs[name] || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, data, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil || ast.IsGenerated(f) {
			return nil // unparsable (some files are build-specific) or generated
		}
		rel, err := filepath.Rel(src, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		var sents []string
		for _, cg := range f.Comments {
			for _, s := range docSentences(cg.Text()) {
				if !seen[s] {
					seen[s] = true
					sents = append(sents, s)
				}
			}
		}
		if len(sents) == 0 {
			return nil
		}
		i, ok := byPkg[pkg]
		if !ok {
			i = len(c.Topics)
			byPkg[pkg] = i
			c.Topics = append(c.Topics, Topic{Name: pkg})
		}
		c.Topics[i].Sentences = append(c.Topics[i].Sentences, sents...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gen: harvesting prose from %s: %w", src, err)
	}
	if len(c.Topics) == 0 {
		return nil, fmt.Errorf("gen: no prose found under %s", src)
	}
	return c, nil
}

// docSentences splits comment text into clean prose sentences.
func docSentences(text string) []string {
	var out []string
	for _, para := range strings.Split(text, "\n\n") {
		lines := strings.Split(strings.Trim(para, "\n"), "\n")
		prose := true
		for _, l := range lines {
			if l == "" || l[0] == ' ' || l[0] == '\t' || l[0] == '#' ||
				strings.HasPrefix(l, "Deprecated:") || strings.HasPrefix(l, "BUG(") ||
				strings.HasPrefix(l, "//") || strings.HasPrefix(l, "[") && strings.Contains(l, "]: ") {
				prose = false
				break
			}
		}
		if !prose {
			continue
		}
		joined := stripDocLinks(strings.Join(lines, " "))
		for _, s := range splitSentences(joined) {
			if cleanSentence(s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// stripDocLinks turns doc links like [io.Reader] into io.Reader.
func stripDocLinks(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '[' {
			if j := strings.IndexByte(s[i:], ']'); j > 1 && !strings.ContainsAny(s[i+1:i+j], " [") {
				b.WriteString(s[i+1 : i+j])
				i += j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// abbreviations end in a period without ending a sentence.
var abbreviations = []string{"e.g.", "i.e.", "etc.", "vs.", "Mr.", "Dr.", "cf.", "approx.", "No."}

// splitSentences splits prose after '.', '?' or '!' followed by a space
// and an upper-case letter, except after common abbreviations.
func splitSentences(s string) []string {
	var out []string
	start := 0
	for i := 0; i+2 < len(s); i++ {
		c := s[i]
		if (c == '.' || c == '?' || c == '!') && s[i+1] == ' ' && s[i+2] >= 'A' && s[i+2] <= 'Z' {
			abbr := false
			for _, a := range abbreviations {
				if strings.HasSuffix(s[start:i+1], a) {
					abbr = true
					break
				}
			}
			if abbr {
				continue
			}
			out = append(out, strings.TrimSpace(s[start:i+1]))
			start = i + 2
		}
	}
	if start < len(s) {
		out = append(out, strings.TrimSpace(s[start:]))
	}
	return out
}

// cleanSentence reports whether s reads as one plain English sentence:
// 40–300 bytes of printable ASCII, at least 7 words, a capital start and a
// final period, no code-like punctuation, URLs or notes, and mostly
// lower-case words.
func cleanSentence(s string) bool {
	if len(s) < 40 || len(s) > 300 || s[0] < 'A' || s[0] > 'Z' || s[len(s)-1] != '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	if strings.ContainsAny(s, "{}=<>|\\`*_$@#^~[]\"") {
		return false
	}
	for _, bad := range []string{"()", "...", "//", "0x", "TODO", "FIXME", "XXX", "BUG", "Deprecated", "NOTE", "Copyright", "See ", "See:", ".go", ": "} {
		if strings.Contains(s, bad) {
			return false
		}
	}
	words := strings.Fields(s)
	if len(words) < 7 {
		return false
	}
	plain := 0
	for _, w := range words {
		w = strings.TrimRight(w, ".,;:?!)")
		w = strings.TrimLeft(w, "(")
		if w == "" {
			continue
		}
		lower := true
		for i := 0; i < len(w); i++ {
			if c := w[i]; !(c >= 'a' && c <= 'z' || c == '-' || c == '\'') {
				lower = false
				break
			}
		}
		if lower {
			plain++
		}
		if i := strings.IndexByte(w, '('); i > 0 {
			return false // a call like f(x)
		}
	}
	return plain*10 >= len(words)*7
}

package native

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/megacontext/megacontext/tokens"
)

// vocabCase is one llama.cpp tokenizer test vector.
type vocabCase struct {
	input string
	want  []int32
}

// readVocabCases parses NAME.gguf.inp / NAME.gguf.out the way llama.cpp's
// test-tokenizer-0 does.
func readVocabCases(t testing.TB, gguf string) []vocabCase {
	t.Helper()
	inp, err := os.ReadFile(gguf + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(gguf + ".out")
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	var inputs []string
	raw := string(inp)
	for pos := 0; pos < len(raw); {
		next := strings.Index(raw[pos:], sep)
		if next < 0 {
			inputs = append(inputs, raw[pos:])
			break
		}
		inputs = append(inputs, raw[pos:pos+next])
		pos += next + len(sep)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("%s: %d inputs, %d outputs", gguf, len(inputs), len(lines))
	}
	cases := make([]vocabCase, len(inputs))
	for i, in := range inputs {
		cases[i].input = in
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", gguf, i+1, err)
			}
			cases[i].want = append(cases[i].want, int32(id))
		}
	}
	return cases
}

// vocabFiles lists the .gguf files of ../shared/vocab that have test vectors.
func vocabFiles(t testing.TB) []string {
	t.Helper()
	dir := filepath.Join(sharedDir(t), "vocab")
	inps, err := filepath.Glob(filepath.Join(dir, "*.gguf.inp"))
	if err != nil || len(inps) == 0 {
		t.Fatalf("no *.gguf.inp in %s (%v)", dir, err)
	}
	var files []string
	for _, inp := range inps {
		files = append(files, strings.TrimSuffix(inp, ".inp"))
	}
	return files
}

func TestTokenizerVectors(t *testing.T) {
	files := vocabFiles(t)
	lib := openTestLib(t)
	total := 0
	for _, gguf := range files {
		t.Run(filepath.Base(gguf), func(t *testing.T) {
			tok, err := lib.LoadVocab(gguf)
			if err != nil {
				t.Fatal(err)
			}
			defer tok.Close()
			cases := readVocabCases(t, gguf)
			for i, c := range cases {
				got, err := tok.Tokenize(c.input)
				if err != nil {
					t.Fatalf("case %d: %v", i, err)
				}
				if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, c.input, got, c.want)
				}
				if n := tok.Count(c.input); n != len(c.want) {
					t.Errorf("case %d %q: Count = %d, want %d", i, c.input, n, len(c.want))
				}
			}
			total += len(cases)
			t.Logf("%s: %d cases, vocabulary of %d tokens", tok.Name(), len(cases), tok.VocabSize())
		})
	}
	t.Logf("%d vocabularies, %d cases", len(files), total)
}

func TestTokenizerConcurrent(t *testing.T) {
	gguf := sharedFile(t, "vocab/ggml-vocab-llama-bpe.gguf")
	lib := openTestLib(t)
	tok, err := lib.LoadVocab(gguf)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	cases := readVocabCases(t, gguf)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 50 {
				c := cases[(g*7+r)%len(cases)]
				got, err := tok.Tokenize(c.input)
				if err != nil || len(got) != len(c.want) || (len(got) > 0 && !slices.Equal(got, c.want)) {
					errs <- fmt.Errorf("goroutine %d: %q: got %v, %v", g, c.input, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTokenizerClose(t *testing.T) {
	gguf := sharedFile(t, "vocab/ggml-vocab-gpt-2.gguf")
	lib := openTestLib(t)
	tok, err := lib.LoadVocab(gguf)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Name() != "llama.cpp:gpt-2" {
		t.Errorf("Name() = %q", tok.Name())
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Tokenize("hello"); err != ErrClosed {
		t.Errorf("Tokenize after Close: %v", err)
	}
	if n := tok.Count("hello world"); n != (tokens.Estimate{}).Count("hello world") {
		t.Errorf("Count after Close = %d, want the estimate", n)
	}
}

func TestLoadVocabErrors(t *testing.T) {
	lib := openTestLib(t)
	if _, err := lib.LoadVocab(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("missing file loaded")
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	if err := os.WriteFile(bad, []byte("GGUF but not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := lib.LoadVocab(bad)
	if err == nil {
		t.Fatal("garbage file loaded")
	}
	t.Log(err)
}

// proseSample is longer English prose for the estimate check.
const proseSample = `It was a bright cold day in April, and the clocks were striking thirteen.
The committee met on Tuesday to review the quarterly budget, which had grown by 12.5% since
last year's estimate of $4,200,000. Several members raised concerns about the proposed
infrastructure upgrades: the servers in building B were installed in 2014 and have not been
replaced since. "We cannot keep patching these machines forever," said the chief engineer,
pointing at a slide that listed forty-three incidents over the past eighteen months.
Meanwhile, the marketing team presented a new campaign aimed at small businesses, featuring
testimonials from customers in Lisbon, Montréal and Kraków. The discussion continued well past
noon; lunch was served in the atrium, where someone had left a half-finished crossword puzzle.
func main() { fmt.Println("hello, world") } // code appears in conversations too.
`

// TestEstimateOvercounts checks that tokens.Estimate does not undercount
// the exact tokenizers. It fails on prose (the budget case); undercounts of
// llama.cpp's short edge-case vectors are logged with an UNDERCOUNT marker,
// since the tokens package is owned elsewhere.
func TestEstimateOvercounts(t *testing.T) {
	files := vocabFiles(t)
	lib := openTestLib(t)
	for _, gguf := range files {
		t.Run(filepath.Base(gguf), func(t *testing.T) {
			tok, err := lib.LoadVocab(gguf)
			if err != nil {
				t.Fatal(err)
			}
			defer tok.Close()
			for _, prose := range []string{proseSample, strings.Repeat(proseSample, 20)} {
				e, x := tokens.Estimate{}.Count(prose), tok.Count(prose)
				if e < x {
					t.Errorf("prose of %d bytes: estimate %d < %s %d", len(prose), e, tok.Name(), x)
				}
			}
			pe, px := tokens.Estimate{}.Count(proseSample), tok.Count(proseSample)
			var est, exact, under int
			cases := readVocabCases(t, gguf)
			for i, c := range cases {
				e, x := tokens.Estimate{}.Count(c.input), tok.Count(c.input)
				est += e
				exact += x
				if e < x {
					under++
					t.Logf("UNDERCOUNT case %d %q: estimate %d < %s %d", i, clip(c.input, 60), e, tok.Name(), x)
				}
			}
			t.Logf("%s: prose estimate %d / exact %d = %.3f; %d vectors: %d / %d = %.3f, %d undercounted",
				tok.Name(), pe, px, float64(pe)/float64(px), len(cases), est, exact, float64(est)/float64(exact), under)
		})
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

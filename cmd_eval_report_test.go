package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/native"
)

// runEval runs `megacontext eval ARGS...` in-process and returns its
// standard output.
func runEval(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newEvalCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

// `eval report` wires the matrix end to end: the vocabulary it names, both
// asset variants, the three files in the output folder, and the command
// line quoted in the tables. Needs the native library and ../shared.
func TestEvalReportWritesTheMatrix(t *testing.T) {
	vocab := filepath.Join("..", "shared", "vocab", "ggml-vocab-llama-bpe.gguf")
	if _, err := os.Stat(vocab); err != nil {
		t.Skipf("needs ../shared's vocabularies: %v", err)
	}
	if _, err := native.Open(""); err != nil {
		t.Skipf("needs the native library (make native): %v", err)
	}
	dir := t.TempDir()
	stdout, err := runEval(t, "report", "--sets", "docs:dev", "--sizes", "4k", "--vocab", vocab+"@512,1024", "-o", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "eval report: 2 cells") {
		t.Errorf("stdout: %s", stdout)
	}
	md, err := os.ReadFile(filepath.Join(dir, reportMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"eval report --out=" + dir + " --sets=docs:dev --sizes=4k --vocab=" + vocab + "@512,1024`",
		"| docs dev | assets |", "| docs dev | no assets |", "llama-bpe 1024", "### docs dev, no assets",
		"- no assets: none",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("tables lack %q:\n%s", want, md)
		}
	}
	var m struct {
		Cells []struct{ Set, Vocab, Variant string }
	}
	raw, err := os.ReadFile(filepath.Join(dir, reportJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Cells) != 2 {
		t.Errorf("matrix.json: %d cells, %v", len(m.Cells), err)
	}
	if svg, err := os.ReadFile(filepath.Join(dir, reportSVG)); err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Errorf("plot: %v", err)
	}
	if _, err := runEval(t, "report", "--sets", "docs:train", "-o", dir); err == nil {
		t.Error("an unknown split was accepted")
	}
}

// --no-assets runs the pure-Go fallback, and refuses an asset named at the
// same time.
func TestEvalNoAssets(t *testing.T) {
	data := filepath.Join("tools", "eval", "testdata", "small.jsonl")
	out, err := runEval(t, "--data", data, "--budgets", "4096", "--strategies", "megacontext", "--no-assets", "--json", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"evidence_recall"`) {
		t.Errorf("no report: %s", out)
	}
	if _, err := runEval(t, "--data", data, "--no-assets", "--thesaurus", t.TempDir(), "--json", "-q"); err == nil || !strings.Contains(err.Error(), "--no-assets") {
		t.Errorf("--no-assets with --thesaurus FOLDER: %v", err)
	}
}

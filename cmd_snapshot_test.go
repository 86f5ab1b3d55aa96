package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/memory"
)

// TestVerifyReadsStdin: verify takes "-" for standard input, as export
// writes to and import reads from it.
func TestVerifyReadsStdin(t *testing.T) {
	e, err := memory.Open(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := memory.Key{Tenant: "default", Context: "c"}
	if _, err := e.Import(k, []memory.Message{{Role: "user", Text: "The fire assembly point is the north car park."}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	root, err := e.ExportBundle(k, &b, memory.ExportOptions{Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	cmd := newVerifyCmd()
	var out bytes.Buffer
	cmd.SetIn(&b)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"-"})
	if err := cmd.Execute(); err != nil || !strings.HasPrefix(out.String(), "root "+root.String()+"\n") {
		t.Fatalf("verify -: %v\n%s", err, out.String())
	}
}

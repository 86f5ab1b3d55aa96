package memory

import (
	"bytes"
	"errors"
	"testing"

	"github.com/megacontext/megacontext/tokens"
)

// TestExportKeepsTheContextsTokenizer: a context built with one tokenizer
// exports under the same root from a process that only has the estimate
// (an offline export with the upstream unreachable), since the context
// recorded the tokenizer its counts were made with; one whose last reply is
// still to be counted with it is refused with ErrTokenizerUnavailable
// rather than counted with the estimate, and exports once the tokenizer is
// back.
func TestExportKeepsTheContextsTokenizer(t *testing.T) {
	dir := t.TempDir()
	open := func(c tokens.Counter) *Engine {
		t.Helper()
		e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: 16, Fanout: 4, Counter: c})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	export := func(e *Engine, k Key) (string, error) {
		t.Helper()
		var buf bytes.Buffer
		root, err := e.ExportBundle(k, &buf, ExportOptions{Operator: true})
		return root.String(), err
	}
	settled, unsettled := Key{Tenant: "t", Context: "settled"}, Key{Tenant: "t", Context: "unsettled"}
	conv := conversation(6, 3)
	e := open(&callCounter{})
	for _, k := range []Key{settled, unsettled} {
		w, err := e.Prepare(Request{Key: k, Messages: conv, Budget: 4000, PerMessage: 4, TailPercent: 40})
		if err != nil {
			t.Fatal(err)
		}
		if k == unsettled {
			if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, msg("assistant", "Noted: the badge is teal."), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, err := export(e, settled)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = open(tokens.Estimate{})
	got, err := export(e, settled)
	if err != nil || got != want {
		t.Fatalf("export with the estimate: root %s (%v), built with the tokenizer %s", got, err, want)
	}
	if _, err := export(e, unsettled); !errors.Is(err, ErrTokenizerUnavailable) {
		t.Fatalf("export of a reply still to count, with the estimate: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = open(&callCounter{})
	defer e.Close()
	if _, err := export(e, unsettled); err != nil {
		t.Fatalf("export with the tokenizer back: %v", err)
	}
	if err := e.Verify(unsettled); err != nil {
		t.Fatal(err)
	}
}

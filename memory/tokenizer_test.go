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

// downCounter is a tokens.Fallible whose real tokenizer is out of reach:
// it counts with the estimate meanwhile, as the proxy's upstream counter
// does while the upstream is down.
type downCounter struct{ tokens.Estimate }

func (downCounter) Unavailable() bool { return true }

// TestImportRefusesToRecountWithAFallback: a bundle counted with one
// tokenizer, imported by a process whose own tokenizer is out of reach
// (it falls back to the estimate), is refused with ErrTokenizerUnavailable
// and stores nothing, instead of being rebuilt for good with the estimate;
// a process configured with the estimate rebuilds it, and one with the
// tokenizer back keeps the bundle's root.
func TestImportRefusesToRecountWithAFallback(t *testing.T) {
	k := Key{Tenant: "t", Context: "c"}
	src, err := testOpen(t, Options{Dir: t.TempDir(), Now: fixedClock(), BlockTokens: 16, Fanout: 4, Counter: &callCounter{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Prepare(Request{Key: k, Messages: conversation(6, 3), Budget: 4000, PerMessage: 4, TailPercent: 40}); err != nil {
		t.Fatal(err)
	}
	var bundle bytes.Buffer
	root, err := src.ExportBundle(k, &bundle, ExportOptions{Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	src.Close()

	dir := t.TempDir()
	imp := func(c tokens.Counter) (ImportResult, error) {
		t.Helper()
		e, err := testOpen(t, Options{Dir: dir, Now: fixedClock(), BlockTokens: 16, Fanout: 4, Counter: c})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		return e.ImportBundle(k, bytes.NewReader(bundle.Bytes()), ImportOptions{Caller: "test"})
	}
	if _, err := imp(downCounter{}); !errors.Is(err, ErrTokenizerUnavailable) {
		t.Fatalf("import with the tokenizer out of reach: %v", err)
	}
	// Nothing was stored: the tokenizer back, the same bundle imports
	// under the same id and keeps its root, derived data and all.
	res, err := imp(&callCounter{})
	if err != nil || res.Root.String() != root.String() || res.Rebuilt {
		t.Fatalf("import with the tokenizer back: root %s rebuilt %v (%v), want %s kept", res.Root, res.Rebuilt, err, root)
	}
	// A process configured with the estimate rebuilds, as it says.
	k = Key{Tenant: "t", Context: "other"}
	if res, err := imp(tokens.Estimate{}); err != nil || !res.Rebuilt {
		t.Fatalf("import with the estimate configured: rebuilt %v (%v)", res.Rebuilt, err)
	}
}

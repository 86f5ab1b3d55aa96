package memory

import (
	"strings"
	"time"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/tree"
)

// Preamble opens the memory text.
const Preamble = "<memory>\nEarlier conversation from your long-term memory, oldest first, times in UTC. Lines with ~ summarize a span; other lines quote messages verbatim.\n"

// OutlinePreamble opens the memory text in RenderOutline mode.
const OutlinePreamble = "<memory>\nYour long-term memory (UTC): an outline, oldest first (~ lines summarize), then details quoted verbatim.\n"

// Closing ends the memory text.
const Closing = "</memory>"

const timeLayout = "2006-01-02 15:04"

func blockHeader(ms int64, role string) string {
	return "[" + time.UnixMilli(ms).UTC().Format(timeLayout) + "] " + role + ": "
}

func gistHeader(from, to int64) string { return spanLabel(from, to) + " ~ " }

// spanLabel names a time span: "[2025-01-06 09:00 – 11:30]".
func spanLabel(from, to int64) string {
	a, b := time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	start, end := a.Format(timeLayout), b.Format(timeLayout)
	switch {
	case start == end:
		return "[" + start + "]"
	case a.Format("2006-01-02") == b.Format("2006-01-02"):
		end = b.Format("15:04")
	}
	return "[" + start + " – " + end + "]"
}

// detailsHeader introduces the focus zone's details of an outline entry.
func detailsHeader(n *tree.Node) string { return "Details of " + spanLabel(n.Time, n.TimeEnd) + ":" }

// detailsCost is the token count of n's details header: counted at ingest
// (no round trip on the request path), or now for nodes stored before.
func (e *Engine) detailsCost(n *tree.Node) int {
	if n.DetailsHead > 0 {
		return n.DetailsHead
	}
	return e.countCached(detailsHeader(n))
}

// preamble opens the memory text.
func (e *Engine) preamble() string {
	if e.opts.Render == RenderOutline {
		return OutlinePreamble
	}
	return Preamble
}

// entryOverhead is what rendering adds to an entry: its header (counted
// alone, which is at least what it costs joined to the text), a line break,
// and an ellipsis for a block that starts mid-message; nothing for a block
// that continues its predecessor's message; a marker for a headline.
func entryOverhead(n *tree.Node, d focus.Detail, prev *tree.Node) int {
	switch {
	case d == focus.Short:
		return shortOverhead
	case n.Level == 0 && continues(prev, n):
		return n.Join
	case n.Level == 0 && n.Part > 0:
		return n.Head + 2
	default:
		return n.Head + 1
	}
}

// shortOverhead is the cost of a headline's line break and "~ " marker.
const shortOverhead = 2

// continues reports whether block n directly follows block prev in one message.
func continues(prev, n *tree.Node) bool {
	return prev != nil && prev.Level == 0 && n.Level == 0 && prev.Msg == n.Msg && prev.Part+1 == n.Part
}

// render writes the memory text of the entries, filtering verbatim blocks
// by the policy for a caller holding scopes (gists are built from redacted
// text and need no filtering).
func (e *Engine) render(c *mctx, entries []focus.Entry, scopes []string) (string, []EntryInfo, []policy.Hit) {
	mw := memoryWriter{e: e, scopes: scopes}
	for _, en := range entries {
		mw.entry(en)
	}
	return mw.finish()
}

// renderZones writes the memory text of an outline-mode window: the
// outline, then the focus zone's entries, each outline entry's details
// introduced by a header naming its span (none in a headless window: each
// block's own header dates it); elided entries are skipped.
func (e *Engine) renderZones(c *mctx, res focus.Result, scopes []string) (string, []EntryInfo, []policy.Hit) {
	mw := memoryWriter{e: e, scopes: scopes}
	for _, en := range res.Outline {
		if en.Detail != focus.Elided {
			mw.entry(en)
		}
	}
	var group *tree.Node
	pending := false // group's header is not written yet
	for _, en := range res.Entries {
		if en.Tail || en.Refines == nil || en.Detail == focus.Elided {
			continue
		}
		if en.Refines != group {
			group = en.Refines
			pending = true
		}
		// A block that goes on with the message the previous group ended
		// with is written on its line, so that a message split across two
		// spans still reads as one; its group's header comes after it.
		if pending && !continues(mw.prev, en.Node) {
			if !res.Headless {
				mw.line(detailsHeader(group))
			}
			pending = false
		}
		mw.entry(en)
	}
	return mw.finish()
}

// memoryWriter writes memory text entry by entry.
type memoryWriter struct {
	e      *Engine
	scopes []string
	sb     strings.Builder
	infos  []EntryInfo
	hits   []policy.Hit
	prev   *tree.Node // the last block written, for continuations
}

// start opens the text or the next line; cont continues the current line.
func (w *memoryWriter) start(cont bool) {
	if w.sb.Len() == 0 {
		w.sb.WriteString(w.e.preamble())
	} else if !cont {
		w.sb.WriteByte('\n')
	}
}

// line writes a line of its own.
func (w *memoryWriter) line(s string) {
	w.start(false)
	w.sb.WriteString(s)
	w.prev = nil
}

func (w *memoryWriter) entry(en focus.Entry) {
	if en.Tail && en.Why == focus.Pinned && en.Node != nil {
		// A pinned block: verbatim in its place (pins.go).
		en.Tail, en.Detail = false, focus.Verbatim
	}
	if en.Tail {
		w.prev = nil
		return
	}
	n := en.Node
	w.infos = append(w.infos, EntryInfo{Level: n.Level, Index: n.Index, First: n.First, Last: n.Last, Detail: en.Detail.String(), Tokens: en.Cost,
		Reason: en.Why.String(), Round: en.Round, Score: en.Score})
	text := n.Text
	if en.Detail == focus.Verbatim && len(n.Spans) > 0 {
		out, excluded, h := w.e.opts.Policy.Apply(n.Text, toPolicySpans(n.Spans), w.scopes)
		w.hits = append(w.hits, h...)
		if excluded {
			w.infos[len(w.infos)-1].Withheld = true
			w.prev = nil // the block is left out; what follows restarts with a header
			return
		}
		text = out
	}
	cont := en.Detail == focus.Verbatim && continues(w.prev, n)
	w.start(cont)
	sb := &w.sb
	info := &w.infos[len(w.infos)-1]
	info.At[0] = sb.Len()
	defer func() { info.At[1] = sb.Len() }()
	switch en.Detail {
	case focus.Verbatim:
		if cont {
			sb.WriteString(text)
		} else {
			sb.WriteString(blockHeader(n.Time, n.Role))
			if n.Part > 0 {
				sb.WriteString("…")
			}
			sb.WriteString(strings.TrimLeft(text, " "))
		}
		w.prev = n
	case focus.Full:
		sb.WriteString(gistHeader(n.Time, n.TimeEnd))
		sb.WriteString(n.Text)
		w.prev = nil
	case focus.Short:
		sb.WriteString("~ ")
		sb.WriteString(n.Short)
		w.prev = nil
	}
}

func (w *memoryWriter) finish() (string, []EntryInfo, []policy.Hit) {
	if w.sb.Len() == 0 {
		return "", nil, w.hits
	}
	w.sb.WriteByte('\n')
	w.sb.WriteString(Closing)
	return w.sb.String(), w.infos, w.hits
}

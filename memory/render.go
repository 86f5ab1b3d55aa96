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

// SmallPreamble opens the memory text in RenderOutline mode in a window
// of headlessWindow tokens or less where OutlinePreamble would take more
// than 1/preambleShare of the budget: 27 tokens of stories260K against its
// 81, which at a 512-token budget is a sixth of the window. At 1024 it
// gained chat dev 32k,128k one question (77.3 -> 78.3 %) but lost a
// described request of memory/said_test.go: the outline took the tokens.
const SmallPreamble = "<memory>\nRecalled turns (UTC):\n"

// preambleShare: the outline preamble is kept while it costs at most
// 1/preambleShare of the budget (llama-bpe: 800 tokens and more).
const preambleShare = 32

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

// preambleFor opens the memory text of a window of budget tokens: the
// short one where the outline's would cost more than its share.
func (e *Engine) preambleFor(budget int) string {
	p := e.preamble()
	if p == OutlinePreamble && budget <= headlessWindow && e.countCached(p)*preambleShare > budget {
		return SmallPreamble
	}
	return p
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

// Stamped details. In a small window the focus zone writes a block's time
// on a line of its own, once for the blocks that share it, and each block
// under it with its role alone:
//
//	[2024-11-17 12:19]
//	user: …the first block shown of that minute
//	assistant: the next one
//
// A block's header ("[2024-11-17 12:19] user: ") costs 24 tokens of
// stories260K, its role line 7.

// stampLine is the line that dates the stamped blocks under it.
func stampLine(ms int64) string {
	return "[" + time.UnixMilli(ms).UTC().Format(timeLayout) + "]"
}

// roleLead opens a stamped block's line under its time.
func roleLead(role string) string { return role + ": " }

// sameStamp reports whether blocks a and b are written under one time.
func sameStamp(a, b *tree.Node) bool {
	return stampLine(a.Time) == stampLine(b.Time)
}

// stampedOverhead is what the focus zone of a stamped window adds to block
// n written after its block prev (focus.Input.Follow): the join when n
// goes on with prev's message, the role line under prev's time, or else
// its header with a line break more (the time's own line), as counted at
// ingest; an ellipsis when n starts mid-message.
func (e *Engine) stampedOverhead(prev, n *tree.Node) int {
	marks := 0
	if n.Part > 0 {
		marks = 1
	}
	switch {
	case continues(prev, n):
		return n.Join
	case prev != nil && sameStamp(prev, n):
		return e.countCached("\n"+roleLead(n.Role)) + marks
	default:
		return n.Head + 2 + marks
	}
}

// continues reports whether block n directly follows block prev in one message.
func continues(prev, n *tree.Node) bool {
	return prev != nil && prev.Level == 0 && n.Level == 0 && prev.Msg == n.Msg && prev.Part+1 == n.Part
}

// render writes the memory text of the entries, filtering verbatim blocks
// by the policy for a caller holding scopes (gists are built from redacted
// text and need no filtering).
func (e *Engine) render(c *mctx, entries []focus.Entry, scopes []string) (string, []EntryInfo, []policy.Hit) {
	mw := memoryWriter{e: e, scopes: scopes, pre: e.preamble()}
	for _, en := range entries {
		mw.entry(en)
	}
	return mw.finish()
}

// renderZones writes the memory text of an outline-mode window: the
// outline, then the focus zone's entries, each outline entry's details
// introduced by a header naming its span (none in a headless window: each
// block's own header dates it); elided entries are skipped.
func (e *Engine) renderZones(c *mctx, res focus.Result, scopes []string, pre string) (string, []EntryInfo, []policy.Hit) {
	mw := memoryWriter{e: e, scopes: scopes, pre: pre}
	for _, en := range res.Outline {
		if en.Detail != focus.Elided {
			mw.entry(en)
		}
	}
	if res.Followed {
		var stamp *tree.Node // the last block written under its time
		for _, en := range res.Entries {
			if en.Tail || en.Refines == nil || en.Detail == focus.Elided {
				continue
			}
			mw.stamped(en, stamp)
			if !mw.infos[len(mw.infos)-1].Withheld {
				stamp = en.Node
			}
		}
		return mw.finish()
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
	pre    string // the preamble
	sb     strings.Builder
	infos  []EntryInfo
	hits   []policy.Hit
	prev   *tree.Node // the last block written, for continuations
	// lead, when set, opens the next verbatim block's line instead of
	// its header (stamped).
	lead string
}

// start opens the text or the next line; cont continues the current line.
func (w *memoryWriter) start(cont bool) {
	if w.sb.Len() == 0 {
		w.sb.WriteString(w.pre)
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
		} else if w.lead != "" {
			sb.WriteString(w.lead)
			sb.WriteString(strings.TrimLeft(text, " "))
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

// stamped writes a focus block of a stamped window (stampedOverhead):
// on the line of the block it goes on from, or under the time of stamp,
// the last block written under one, or under its own.
func (w *memoryWriter) stamped(en focus.Entry, stamp *tree.Node) {
	n := en.Node
	if continues(w.prev, n) {
		w.entry(en)
		return
	}
	w.prev = nil
	lead := roleLead(n.Role)
	if n.Part > 0 {
		lead += "…"
	}
	if stamp == nil || !sameStamp(stamp, n) {
		lead = stampLine(n.Time) + "\n" + lead
	}
	w.lead = lead
	w.entry(en)
	w.lead = ""
}

func (w *memoryWriter) finish() (string, []EntryInfo, []policy.Hit) {
	if w.sb.Len() == 0 {
		return "", nil, w.hits
	}
	w.sb.WriteByte('\n')
	w.sb.WriteString(Closing)
	return w.sb.String(), w.infos, w.hits
}

package memory

import (
	"slices"
	"time"
)

// What the inspector reads: the kept windows of a context, rendered for
// the viewer's clearances.

// WindowView is a kept window as a viewer may see it: what the model was
// sent (memory text and verbatim tail) and why.
type WindowView struct {
	// Time is when the window was sent.
	Time time.Time `json:"time"`
	// Question is the request's last user message.
	Question string `json:"question"`
	// Budget and Tokens are as the response headers reported them;
	// UpstreamStatus is the upstream's answer.
	Budget         int `json:"budget"`
	Tokens         int `json:"window_tokens"`
	MemoryTokens   int `json:"memory_tokens"`
	HistoryTokens  int `json:"history_tokens"`
	Expanded       int `json:"expanded"`
	OmittedBlocks  int `json:"omitted_blocks"`
	NewMessages    int `json:"new_messages"`
	UpstreamStatus int `json:"upstream_status"`
	// SwapRate is the share of the nodes in this window or the previous one
	// that are not in both.
	SwapRate float64 `json:"swap_rate"`
	// Memory is the memory text, rendered again for the viewer; Entries its
	// entries with their reasons; OmittedMatches the relevant blocks it
	// left out, with why.
	Memory         string         `json:"memory"`
	Entries        []EntryInfo    `json:"entries"`
	OmittedMatches []OmittedMatch `json:"omitted_matches"`
	// Tail are the verbatim tail's stored messages.
	Tail []MessageInfo `json:"tail"`
}

// Windows returns a context's kept windows, newest first, filtered for a
// viewer holding scopes as a window would be.
func (e *Engine) Windows(k Key, scopes []string) ([]WindowView, error) {
	e.SettleFocus()
	c, err := e.acquire(k, false)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	c.telMu.Lock()
	kept := slices.Clone(c.kept)
	c.telMu.Unlock()
	out := make([]WindowView, 0, len(kept))
	for _, kw := range slices.Backward(kept) {
		e.explainTerms(c, &kw.w)
		v := WindowView{Time: kw.at.UTC(), Budget: kw.meta.Budget, Tokens: kw.meta.Tokens, MemoryTokens: kw.w.MemoryTokens,
			HistoryTokens: kw.w.HistoryTokens, Expanded: kw.w.Expanded, OmittedBlocks: kw.w.Omitted, NewMessages: kw.w.NewMessages,
			UpstreamStatus: kw.meta.Status, SwapRate: kw.swap, OmittedMatches: kw.w.OmittedMatches, Tail: []MessageInfo{}}
		v.OmittedMatches = slices.Clone(v.OmittedMatches)
		if v.OmittedMatches == nil {
			v.OmittedMatches = []OmittedMatch{}
		}
		for i, om := range v.OmittedMatches {
			if n := c.tree.Block(om.Block); n == nil || e.withheldFor(n, scopes) {
				v.OmittedMatches[i].Terms = nil
			}
		}
		q, excluded, _ := e.opts.Policy.Filter(kw.question, scopes)
		if excluded {
			q = WithheldText
		}
		v.Question = q
		// The text again, for this viewer; the reasons as explained then.
		var infos []EntryInfo
		if kw.res.Outline != nil {
			v.Memory, infos, _ = e.renderZones(c, kw.res, scopes)
		} else {
			v.Memory, infos, _ = e.render(c, kw.res.Entries, scopes)
		}
		v.Entries = slices.Clone(kw.w.Entries)
		for i := range v.Entries {
			if i < len(infos) {
				v.Entries[i].Withheld = infos[i].Withheld
			}
			if v.Entries[i].Withheld {
				v.Entries[i].Terms = nil
			}
		}
		if v.Entries == nil {
			v.Entries = []EntryInfo{}
		}
		for _, seq := range kw.tail {
			if seq >= 0 && seq < int64(len(c.msgs)) {
				v.Tail = append(v.Tail, e.messageInfo(c, c.msgs[seq], scopes))
			}
		}
		out = append(out, v)
	}
	return out, nil
}

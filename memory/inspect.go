package memory

import (
	"errors"
	"slices"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/tree"
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
	c, mounts, err := e.acquireKept(k)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	for _, m := range mounts {
		defer m.mu.Unlock()
	}
	mount := func(name string) *mctx {
		for _, m := range mounts {
			if m.key.Context == name {
				return m
			}
		}
		return nil
	}
	c.telMu.Lock()
	kept := slices.Clone(c.kept)
	c.telMu.Unlock()
	out := make([]WindowView, 0, len(kept))
	for _, kw := range slices.Backward(kept) {
		e.explainTerms(c, &kw.w, mount)
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
		res := kw.res
		res.Entries, res.Outline = currentNodes(c, res.Entries), currentNodes(c, res.Outline)
		if res.Outline != nil {
			pre := e.preamble()
			if kw.w.why != nil && kw.w.why.pre != "" {
				pre = kw.w.why.pre
			}
			v.Memory, infos, _ = e.renderZones(c, res, scopes, pre)
		} else {
			v.Memory, infos, _ = e.render(c, res.Entries, scopes)
		}
		if kw.w.why != nil {
			for _, mp := range kw.w.why.mounts {
				v.Memory, infos = e.renderKeptMount(mount(mp.name), mp, scopes, v.Memory, infos)
			}
		}
		v.Entries = slices.Clone(kw.w.Entries)
		for i := range v.Entries {
			if i < len(infos) {
				v.Entries[i].Withheld, v.Entries[i].At = infos[i].Withheld, infos[i].At
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

// renderKeptMount appends a mounted memory's part of a kept window to its
// memory text and entry infos, rendered for the viewer as renderMount
// rendered it for the request. A mount deleted since (mc nil) keeps its
// entries, without text.
func (e *Engine) renderKeptMount(mc *mctx, mp mountPart, scopes []string, memory string, infos []EntryInfo) (string, []EntryInfo) {
	if mc == nil {
		return memory, append(infos, make([]EntryInfo, len(mp.entries))...)
	}
	text, minfos, _ := e.render(mc, currentNodes(mc, mp.entries), scopes)
	if text == "" {
		return memory, append(infos, make([]EntryInfo, len(mp.entries))...)
	}
	return e.joinMount(memory, mp.name, text, minfos), append(infos, minfos...)
}

// acquireKept locks k and the memories its kept windows mounted that still
// exist, in the order requests lock them (acquireWithMounts).
func (e *Engine) acquireKept(k Key) (*mctx, []*mctx, error) {
	for try := 0; ; try++ {
		c, err := e.acquire(k, false)
		if err != nil {
			return nil, nil, err
		}
		var names []string
		c.telMu.Lock()
		for _, kw := range c.kept {
			if kw.w.why == nil {
				continue
			}
			for _, mp := range kw.w.why.mounts {
				if mp.name != k.Context && !slices.Contains(names, mp.name) {
					names = append(names, mp.name)
				}
			}
		}
		c.telMu.Unlock()
		if len(names) == 0 {
			return c, nil, nil
		}
		c.mu.Unlock()
		// A memory deleted since is left out; its part shows no text.
		names = slices.DeleteFunc(names, func(name string) bool {
			mc, err := e.acquire(Key{Tenant: k.Tenant, Context: name}, false)
			if err == nil {
				mc.mu.Unlock()
			}
			return err != nil
		})
		c, mounts, err := e.acquireWithMounts(k, false, names)
		if errors.Is(err, ErrMountNotFound) {
			if try < 3 {
				continue // deleted meanwhile
			}
			c, err = e.acquire(k, false)
			return c, nil, err
		}
		return c, mounts, err
	}
}

// currentNodes returns entries with the tree's nodes as they are now (a
// retention rule may have pruned some since); nil stays nil.
func currentNodes(c *mctx, entries []focus.Entry) []focus.Entry {
	if entries == nil {
		return nil
	}
	out := slices.Clone(entries)
	for i := range out {
		if n := out[i].Node; n != nil {
			if cur := c.tree.Node(n.Level, n.Index); cur != nil {
				out[i].Node = cur
			}
		}
	}
	return out
}

// NodeView is a gist tree node as the inspector shows it.
type NodeView struct {
	Level int `json:"level"`
	Index int `json:"index"`
	// First and Last are the blocks it covers; Msg the message of the first.
	First int   `json:"first_block"`
	Last  int   `json:"last_block"`
	Msg   int64 `json:"msg"`
	// Tokens is the raw text it covers; Time and TimeEnd its span in time.
	Tokens  int       `json:"tokens"`
	Time    time.Time `json:"time"`
	TimeEnd time.Time `json:"time_end"`
	// Text is a gist's text, or a block's text filtered for the viewer;
	// Headline a gist's short form; Role a block's message role.
	Text     string `json:"text"`
	Headline string `json:"headline,omitempty"`
	Role     string `json:"role,omitempty"`
	// Tags are the policy rules of what it covers.
	Tags []string `json:"tags,omitempty"`
	// Children is how many nodes it opens into (0 for a block).
	Children int `json:"children"`
	// Focus is its telemetry; SwapRate its share of swapped turns.
	Focus    NodeFocus `json:"focus"`
	SwapRate float64   `json:"swap_rate"`
	// Pinned is set when a pin covers it (a block) or part of it (a gist);
	// Pruned when a retention rule pruned a block's text.
	Pinned bool `json:"pinned"`
	Pruned bool `json:"pruned,omitempty"`
}

// TreeView is a range of one level of a context's gist tree.
type TreeView struct {
	// Levels are the node counts per level, blocks first; Fanout is F.
	Levels []int `json:"levels"`
	Fanout int   `json:"fanout"`
	// Level and From say where Nodes start; Level -1 is the roots: the
	// coarsest cover of the whole timeline (the top level, then what its
	// nodes do not cover yet, level by level).
	Level int        `json:"level"`
	From  int        `json:"from"`
	Nodes []NodeView `json:"nodes"`
}

// Tree returns up to limit nodes of one level of k's gist tree from index
// from on, with their telemetry and pin state, texts filtered for a viewer
// holding scopes (gists are built from redacted text). level < 0 returns
// the roots (from and limit index them). The inspector loads the tree
// this way, a level and a range at a time.
func (e *Engine) Tree(k Key, level, from, limit int, scopes []string) (TreeView, error) {
	e.SettleFocus()
	c, err := e.acquire(k, false)
	if err != nil {
		return TreeView{}, err
	}
	defer c.mu.Unlock()
	tv := TreeView{Fanout: c.tree.Fanout(), Nodes: []NodeView{}}
	for l := 0; l < c.tree.Height(); l++ {
		tv.Levels = append(tv.Levels, c.tree.LevelLen(l))
	}
	tv.Level, tv.From = level, max(from, 0)
	var nodes []*tree.Node
	if level < 0 || level >= c.tree.Height() {
		tv.Level = -1
		roots := c.tree.Roots(0)
		nodes = roots[min(tv.From, len(roots)):min(tv.From+limit, len(roots))]
	} else {
		for i := tv.From; i < c.tree.LevelLen(level) && len(nodes) < limit; i++ {
			nodes = append(nodes, c.tree.Node(level, i))
		}
	}
	c.telMu.Lock()
	defer c.telMu.Unlock()
	for _, n := range nodes {
		v := NodeView{Level: n.Level, Index: n.Index, First: n.First, Last: n.Last, Msg: n.Msg, Tokens: n.Tokens,
			Time: time.UnixMilli(n.Time).UTC(), TimeEnd: time.UnixMilli(n.TimeEnd).UTC(), Tags: n.Tags,
			Focus: c.focusOf(n), Pinned: c.pinnedWithin(n.First, n.Last)}
		v.SwapRate = v.Focus.SwapRate()
		if n.Level == 0 {
			v.Role, v.Text = n.Role, n.Text
			if len(n.Spans) > 0 {
				out, excluded, _ := e.opts.Policy.Apply(n.Text, toPolicySpans(n.Spans), scopes)
				if v.Text = out; excluded {
					v.Text = WithheldText
				}
			}
			v.Pruned = n.Msg >= 0 && n.Msg < int64(len(c.msgs)) && c.msgs[n.Msg].Pruned
		} else {
			v.Text, v.Headline, v.Children = n.Text, n.Short, c.tree.Fanout()
		}
		tv.Nodes = append(tv.Nodes, v)
	}
	return tv, nil
}

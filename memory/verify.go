package memory

import (
	"fmt"
	"strings"
)

// Verify checks a MegaContext as the store has it against the invariants
// every writer must keep, whichever replica wrote what: messages numbered
// 0..n-1, each after its parent, each chain hash following from its
// parent's (a fork or a lost write shows as a hash that does not follow,
// or as one conversation stored twice); every message's blocks tiling its
// text in order, and blocks tiling the timeline; the gist tree's spans,
// token counts and Merkle hashes (tree.Verify); the header's counts. It
// reads the context afresh from the store, as stored (nothing repaired),
// and returns the first defect.
func (e *Engine) Verify(k Key) error {
	if err := k.validate(); err != nil {
		return err
	}
	// Read as stored: a load would repair a tree that does not match the
	// messages (repair.go), and Verify reports it instead.
	c, found, why, err := e.loadOnce(k, false)
	if err != nil {
		return err
	}
	if !found {
		return ErrNotFound
	}
	if why != "" {
		return fmt.Errorf("memory: the stored tree does not match the messages (%s); the next load rebuilds it from them", why)
	}
	return c.verify()
}

func (c *mctx) verify() error {
	tokens := 0
	next := 0 // the next block a message must start at
	seen := map[string]int64{}
	for i, m := range c.msgs {
		if m.Seq != int64(i) {
			return fmt.Errorf("memory: message %d is numbered %d", i, m.Seq)
		}
		if m.Damaged {
			// A record read back damaged (decodeMessage) has no chain to
			// check, but its blocks, if any, must be where they are.
			tokens += m.Tokens
			if m.First >= 0 {
				if err := c.verifyBlocks(m, next); err != nil {
					return err
				}
				next = m.Last + 1
			}
			continue
		}
		if m.Parent < -1 || m.Parent >= m.Seq {
			return fmt.Errorf("memory: message %d follows %d", i, m.Parent)
		}
		if other, dup := seen[m.Hash]; dup {
			return fmt.Errorf("memory: messages %d and %d have one chain hash (stored twice)", other, i)
		}
		seen[m.Hash] = m.Seq
		// A first message's hash starts from its thread's seed, which is
		// not stored; every other follows from its parent's, but for a text
		// that retention pruned or an erasure rewrote (the hash is the
		// original text's, which is gone).
		rewritten := m.Pruned || strings.Contains(m.Text, ErasedText)
		if m.Parent >= 0 && !rewritten {
			p := c.msgs[m.Parent]
			if want := chainHash(p.Hash, Message{Role: m.Role, Name: m.Name, Text: m.Text}); !p.Damaged && m.Hash != want {
				return fmt.Errorf("memory: message %d's chain hash does not follow from message %d's", i, m.Parent)
			}
		}
		tokens += m.Tokens
		if m.First < 0 {
			continue
		}
		if err := c.verifyBlocks(m, next); err != nil {
			return err
		}
		next = m.Last + 1
	}
	if next != c.tree.Len() {
		return fmt.Errorf("memory: %d blocks, the messages hold %d", c.tree.Len(), next)
	}
	if err := c.tree.Verify(); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if c.rec.Messages != len(c.msgs) || c.rec.Tokens != tokens {
		return fmt.Errorf("memory: the header counts %d messages and %d tokens, the records %d and %d", c.rec.Messages, c.rec.Tokens, len(c.msgs), tokens)
	}
	return nil
}

// verifyBlocks checks that message m owns blocks First..Last, from block
// next on, numbered as its parts, and that they spell its text.
func (c *mctx) verifyBlocks(m *msgRecord, next int) error {
	if m.First != next || m.Last < m.First || m.Last >= c.tree.Len() {
		return fmt.Errorf("memory: message %d has blocks [%d, %d], want them from %d", m.Seq, m.First, m.Last, next)
	}
	var text strings.Builder
	for b := m.First; b <= m.Last; b++ {
		n := c.tree.Block(b)
		if n.Msg != m.Seq || n.Part != b-m.First {
			return fmt.Errorf("memory: block %d is part %d of message %d, want part %d of %d", b, n.Part, n.Msg, b-m.First, m.Seq)
		}
		text.WriteString(n.Text)
	}
	if text.String() != m.Text {
		return fmt.Errorf("memory: the blocks of message %d do not spell its text", m.Seq)
	}
	return nil
}

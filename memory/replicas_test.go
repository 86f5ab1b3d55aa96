package memory

import (
	"strings"
	"testing"
)

// TestReplicaForgetsWhatAnotherErased: two engines on one shared store
// (replicas); the second has the context cached with a secret in it when
// the first erases the secret. The second's next window, and every block
// it holds, lack the secret: catching up with an erasure reads the context
// again rather than keeping the old text of the rewritten blocks.
func TestReplicaForgetsWhatAnotherErased(t *testing.T) {
	if !onPostgres {
		t.Skip("replicas share a PostgreSQL store (MEGACONTEXT_TEST_STORE=postgres)")
	}
	dir := t.TempDir()
	a, b := openWith(t, dir, nil, 4), openWith(t, dir, nil, 4)
	k := Key{Tenant: "t", Context: "c"}
	const secret = "ZX-4471-QK"
	conv := conversation(20, 5)
	conv[3] = msg("user", strings.Repeat("My locker code is "+secret+", keep it safe. ", 6))
	if _, err := a.Prepare(Request{Key: k, Messages: conv, Budget: 3000, PerMessage: 4, TailPercent: 30}); err != nil {
		t.Fatal(err)
	}
	if w := window(t, b, k, "What is my locker code?", nil); !strings.Contains(w.Memory, secret) {
		t.Fatalf("setup: the second replica's window lacks the secret:\n%s", w.Memory)
	}
	if _, err := a.Erase(k, EraseRequest{Match: secret, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if w := window(t, b, k, "What is my locker code?", nil); strings.Contains(w.Memory, secret) {
		t.Fatalf("the second replica still shows the erased secret:\n%s", w.Memory)
	}
	c, err := b.acquire(k, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.mu.Unlock()
	for i := range c.tree.Len() {
		if n := c.tree.Node(0, i); strings.Contains(n.Text, secret) {
			t.Fatalf("block %d of the second replica's cached context holds the erased secret: %q", i, n.Text)
		}
	}
	for _, m := range c.msgs {
		if strings.Contains(m.Text, secret) {
			t.Fatalf("message %d of the second replica's cached context holds the erased secret", m.Seq)
		}
	}
}

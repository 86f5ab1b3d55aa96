package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
)

// Many replicas, one memory: several processes of the real binary on one
// PostgreSQL database (store.kind: postgres), with clients spread over
// them as a load balancer would. deploy/compose.yaml runs the same shape.

// cluster is a database, a fake upstream and replicas of the binary.
type cluster struct {
	t *testing.T
	// db is the server when the test owns it (to stop and start it).
	db       *pgtest.Server
	dsn      string
	fake     *fakellama.Server
	replicas []*proxy
}

// startCluster starts n replicas on a fresh database: of the shared
// server, or of a server of the test's own when own is set.
func startCluster(t *testing.T, n int, own bool) *cluster {
	t.Helper()
	c := &cluster{t: t, fake: newFake(t, fakellama.Options{})}
	if own {
		c.db = pgtest.Own(t, pgtest.Options{})
		c.dsn = c.db.DSN("postgres")
	} else {
		c.dsn = pgtest.NewDB(t)
	}
	// Started together, as in a deploy: they migrate the empty database once.
	var wg sync.WaitGroup
	c.replicas = make([]*proxy, n)
	for i := range n {
		wg.Go(func() {
			c.replicas[i] = startProxy(t, proxyOptions{Upstream: c.fake.URL(), Args: []string{"--store", "postgres", "--dsn", c.dsn}})
		})
	}
	wg.Wait()
	for i, r := range c.replicas {
		if r == nil {
			t.Fatalf("replica %d did not start", i)
		}
	}
	return c
}

// verify reads context id from the database, as a new replica would, and
// checks every invariant (chain hashes, tree, header).
func (c *cluster) verify(id string) {
	c.t.Helper()
	st, err := pgstore.Open(context.Background(), pgstore.Options{DSN: c.dsn})
	if err != nil {
		c.t.Fatal(err)
	}
	e, err := memory.Open(memory.Options{Store: st})
	if err != nil {
		c.t.Fatal(err)
	}
	defer e.Close()
	if err := e.Verify(memory.Key{Tenant: "default", Context: id}); err != nil {
		c.t.Errorf("context %s: %v", id, err)
	}
}

// replicaTurn is what a client saw of one turn.
type replicaTurn struct {
	res *chatResult
	err error
}

// say sends a client's whole history plus a new message through replica r.
func sayVia(t *testing.T, r *proxy, id string, hdr map[string]string, history []msg, stream bool) replicaTurn {
	h := map[string]string{"X-MegaContext-Id": id}
	for k, v := range hdr {
		h[k] = v
	}
	res, err := r.chat(chatBody(t, history, map[string]any{"stream": stream}), h)
	return replicaTurn{res, err}
}

// acked checks that every acknowledged message is stored exactly once,
// through every replica, and that nothing else is stored; it returns how
// many were lost and duplicated.
func (c *cluster) acked(id string, history []msg) (lost, dup int) {
	c.t.Helper()
	for i, r := range c.replicas {
		count := map[string]int{}
		for _, m := range r.messages(c.t, id) {
			count[m.Role+"\x00"+m.Text]++
		}
		for _, m := range history {
			switch n := count[m.Role+"\x00"+m.Content]; {
			case n == 0:
				lost++
				c.t.Errorf("replica %d, context %s: acknowledged %s message %.40q not stored", i, id, m.Role, m.Content)
			case n > 1:
				dup++
				c.t.Errorf("replica %d, context %s: %s message %.40q stored %d times", i, id, m.Role, m.Content, n)
			}
		}
	}
	return lost, dup
}

// TestReplicasRoundRobin: clients resend their whole history every turn,
// each turn through the next replica. Every replica answers every turn
// from the whole conversation, stores only the new suffix, and reads back
// the same memory; the contexts verify.
func TestReplicasRoundRobin(t *testing.T) {
	const clients, turns = 6, 8
	c := startCluster(t, 3, false)
	histories := make([][]msg, clients)
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			id := fmt.Sprintf("rr-%d", cl)
			talk := newTalker(uint64(cl))
			for turn := range turns {
				r := c.replicas[(cl+turn)%len(c.replicas)]
				user := msg{"user", fmt.Sprintf("Client %d turn %d. %s", cl, turn, talk.message())}
				out := sayVia(t, r, id, nil, append(histories[cl], user), turn%2 == 1)
				if out.err != nil || out.res.Status != http.StatusOK {
					t.Errorf("client %d turn %d: %v %+v", cl, turn, out.err, out.res)
					return
				}
				if got := out.res.Header.Get("X-MegaContext-New-Messages"); turn > 0 && got != "1" {
					t.Errorf("client %d turn %d through replica %d: %s new messages, want 1 (the rest was stored by other replicas)", cl, turn, (cl+turn)%3, got)
				}
				histories[cl] = append(histories[cl], user, msg{"assistant", out.res.Content})
			}
		})
	}
	wg.Wait()
	for cl := range clients {
		id := fmt.Sprintf("rr-%d", cl)
		if lost, dup := c.acked(id, histories[cl]); lost+dup == 0 {
			for i, r := range c.replicas {
				if st, _ := r.stats(t, id); st.Messages != 2*turns {
					t.Errorf("replica %d: %s has %d messages, want %d", i, id, st.Messages, 2*turns)
				}
			}
		}
		c.verify(id)
	}
}

// TestReplicasRecallAcrossReplicas: a fact told through replica 1 is
// recalled through replica 3, in a new chat, after other turns went
// through replica 2.
func TestReplicasRecallAcrossReplicas(t *testing.T) {
	c := startCluster(t, 3, false)
	const id = "recall"
	fact := []msg{{"user", "Please remember: my locker code is ZX-4471-QK."}}
	res := sayVia(t, c.replicas[0], id, nil, fact, false)
	if res.err != nil || res.res.Status != http.StatusOK {
		t.Fatalf("fact: %v %+v", res.err, res.res)
	}
	history := append(fact, msg{"assistant", res.res.Content})
	talk := newTalker(3)
	for turn := range 6 {
		history = append(history, msg{"user", fmt.Sprintf("Turn %d. %s", turn, talk.message())})
		out := sayVia(t, c.replicas[1], id, nil, history, false)
		if out.err != nil || out.res.Status != http.StatusOK {
			t.Fatalf("turn %d: %v %+v", turn, out.err, out.res)
		}
		history = append(history, msg{"assistant", out.res.Content})
	}
	before := len(c.fake.Requests())
	out := sayVia(t, c.replicas[2], id, nil, []msg{{"user", "What is my locker code?"}}, false)
	if out.err != nil || out.res.Status != http.StatusOK {
		t.Fatalf("question: %v %+v", out.err, out.res)
	}
	reqs := c.fake.Requests()
	if len(reqs) != before+1 {
		t.Fatalf("%d upstream requests for the question, want 1", len(reqs)-before)
	}
	if prompt := string(reqs[len(reqs)-1].Body); !strings.Contains(prompt, "ZX-4471-QK") {
		t.Fatalf("replica 3 did not recall the fact told to replica 1; upstream got %s", prompt)
	}
}

// TestReplicasKillUnderLoad: four clients chat through three replicas, a
// client's failed turn retried on the next replica as a load balancer
// would; ten times one replica is killed with SIGKILL at a random point
// and started again. Every message a client saw acknowledged is stored,
// once; nothing is stored twice.
func TestReplicasKillUnderLoad(t *testing.T) {
	const kills, clients = 10, 4
	c := startCluster(t, 3, false)
	r := rand.New(rand.NewPCG(14, 3))
	histories := make([][]msg, clients)
	talkers := make([]*talker, clients)
	for cl := range talkers {
		talkers[cl] = newTalker(uint64(200 + cl))
	}
	next := make([]int, clients)
	var failed atomic.Int64
	for round := range kills {
		victim := r.IntN(len(c.replicas))
		killAt := int64(1 + r.IntN(8))
		var done atomic.Int64
		var killOnce sync.Once
		var wg sync.WaitGroup
		for cl := range clients {
			wg.Go(func() {
				id := fmt.Sprintf("kill-%d", cl)
				for turn := 0; turn < 6; turn++ {
					user := msg{"user", fmt.Sprintf("Client %d, round %d, turn %d. %s", cl, round, turn, talkers[cl].message())}
					// A failed turn is retried once on the next replica (the
					// same message: stored at most once either way).
					for attempt := 0; attempt < 3; attempt++ {
						next[cl]++
						rep := c.replicas[next[cl]%len(c.replicas)]
						out := sayVia(t, rep, id, nil, append(histories[cl], user), turn%2 == 0)
						if out.err != nil || out.res.Status != http.StatusOK {
							failed.Add(1)
							continue
						}
						histories[cl] = append(histories[cl], user, msg{"assistant", out.res.Content})
						break
					}
					if done.Add(1) == killAt {
						killOnce.Do(func() { c.replicas[victim].kill(syscall.SIGKILL) })
					}
				}
			})
		}
		wg.Wait()
		killOnce.Do(func() { c.replicas[victim].kill(syscall.SIGKILL) })
		c.replicas[victim].start()
	}
	lost, dup, acked := 0, 0, 0
	for cl := range clients {
		id := fmt.Sprintf("kill-%d", cl)
		l, d := c.acked(id, histories[cl])
		lost, dup, acked = lost+l, dup+d, acked+len(histories[cl])
		c.verify(id)
	}
	t.Logf("%d kills of a replica under %d clients: %d acknowledged messages, %d lost, %d duplicated (summed over the 3 replicas' views); %d turns failed and were retried", kills, clients, acked, lost, dup, failed.Load())
}

// TestReplicasDatabaseDownAndBack: with the database stopped, chat turns
// fail at once with 503 and an OpenAI error, /readyz says why, and
// nothing is acknowledged; started again, every replica serves again
// without a restart, and every acknowledged message is there.
func TestReplicasDatabaseDownAndBack(t *testing.T) {
	c := startCluster(t, 3, true)
	const id = "dbdown"
	var history []msg
	turn := func(i int, r *proxy) replicaTurn {
		user := msg{"user", fmt.Sprintf("Turn %d: the database may be down.", i)}
		out := sayVia(t, r, id, nil, append(history, user), i%2 == 0)
		if out.err == nil && out.res.Status == http.StatusOK {
			history = append(history, user, msg{"assistant", out.res.Content})
		}
		return out
	}
	for i := range 4 {
		if out := turn(i, c.replicas[i%3]); out.err != nil || out.res.Status != http.StatusOK {
			t.Fatalf("turn %d: %v %+v", i, out.err, out.res)
		}
	}
	if err := c.db.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, r := range c.replicas {
		out := turn(10+i, r)
		if out.err != nil {
			t.Fatalf("replica %d with the database down: %v", i, out.err)
		}
		if out.res.Status != http.StatusServiceUnavailable {
			t.Fatalf("replica %d with the database down: status %d, want 503: %s", i, out.res.Status, out.res.Body)
		}
		if e := checkOpenAIError(t, "database down", out.res.Body); e.Get("code").Str != "store_unavailable" {
			t.Errorf("replica %d: error code %q, want store_unavailable", i, e.Get("code").Str)
		}
		ready := r.mustDo(t, "GET", "/readyz", nil, nil)
		if ready.Status != http.StatusServiceUnavailable || gjson.GetBytes(ready.Body, "error.code").Str != "store_unavailable" {
			t.Errorf("replica %d /readyz with the database down: %d %s", i, ready.Status, ready.Body)
		}
	}
	if err := c.db.StartAgain(); err != nil {
		t.Fatal(err)
	}
	for i, r := range c.replicas {
		if ready := r.mustDo(t, "GET", "/readyz", nil, nil); ready.Status != http.StatusOK {
			t.Errorf("replica %d /readyz with the database back: %d %s", i, ready.Status, ready.Body)
		}
		if out := turn(20+i, r); out.err != nil || out.res.Status != http.StatusOK {
			t.Fatalf("replica %d with the database back: %v %+v", i, out.err, out.res)
		}
	}
	c.acked(id, history)
	c.verify(id)
}

// TestReplicasOneContextManyWriters: twenty clients write one context at
// once (twenty chats of one user), through three replicas. Writers that
// lose a race redo their turn on the context as stored; the context ends
// with every acknowledged message once, its chains and tree intact.
func TestReplicasOneContextManyWriters(t *testing.T) {
	const clients, turns = 20, 4
	c := startCluster(t, 3, false)
	const id = "crowded"
	histories := make([][]msg, clients)
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			hdr := map[string]string{"X-MegaContext-Thread": fmt.Sprintf("chat-%d", cl)}
			for turn := range turns {
				user := msg{"user", fmt.Sprintf("Chat %d turn %d: note %d-%d.", cl, turn, cl, turn)}
				out := sayVia(t, c.replicas[(cl+turn)%3], id, hdr, append(histories[cl], user), false)
				if out.err != nil || out.res.Status != http.StatusOK {
					t.Errorf("chat %d turn %d: %v %+v", cl, turn, out.err, out.res)
					return
				}
				histories[cl] = append(histories[cl], user, msg{"assistant", out.res.Content})
			}
		})
	}
	wg.Wait()
	var all []msg
	for _, h := range histories {
		all = append(all, h...)
	}
	c.acked(id, all)
	for i, r := range c.replicas {
		if st, _ := r.stats(t, id); st.Messages != clients*turns*2 || st.Threads != clients {
			t.Errorf("replica %d: %d messages in %d threads, want %d in %d", i, st.Messages, st.Threads, clients*turns*2, clients)
		}
	}
	c.verify(id)
	conflicts, catchUps := 0.0, 0.0
	for _, r := range c.replicas {
		conflicts += r.metric(t, "megacontext_store_conflicts_total")
		catchUps += r.metric(t, "megacontext_store_catchups_total")
	}
	t.Logf("%d chats x %d turns through 3 replicas: %v conflicts rerun, %v catch-ups", clients, turns, conflicts, catchUps)
	if catchUps == 0 {
		t.Error("no replica caught up with another's writes: the test did not exercise sharing")
	}
}

// metric reads one unlabelled value of the replica's /metrics.
func (p *proxy) metric(t *testing.T, name string) float64 {
	t.Helper()
	r := p.mustDo(t, "GET", "/metrics", nil, nil)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

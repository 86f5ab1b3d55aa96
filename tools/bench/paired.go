package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/proxy"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// pairedBench (--store both) measures what PostgreSQL adds over the
// embedded store turn by turn, at the same moment's load: one replica on
// the embedded store and --replicas on PostgreSQL run side by side, each
// with its own preloaded conversation of --history tokens, and every turn
// is sent to both, in alternating order, each against a direct request to
// the upstream. On a shared host whose load moves the added latency by
// 5-10 ms from one run to the next, separate runs of the two stores cannot
// resolve a difference of 1-2 ms; turns taken in pairs can. (No throughput
// or RSS phase: run each store alone for those.)
//
//	go run ./tools/bench --replicas 1 --store both --history 100000 --turns 200
type pairedBench struct {
	n, history, turns int
	sync              string
	synchronousCommit string
}

// lane is one store's replicas and conversation.
type lane struct {
	kind string
	reps []*replicaProc
	msgs []map[string]string
	// overhead is each measured turn's added latency (through the
	// replica minus direct), in turn order.
	overhead []float64
	before   map[string]float64
}

func (b pairedBench) run(jsonOut bool) error {
	br, closeRig, err := newBinRig("megacontext-bench-paired-")
	if err != nil {
		return err
	}
	defer closeRig()
	work, bin, fake := br.work, br.bin, br.fake
	up, err := upstream.New(upstream.Options{BaseURL: fake.URL()})
	if err != nil {
		return err
	}
	defer up.Close()
	if _, err := up.Discover(context.Background()); err != nil {
		return err
	}
	var lanes []*lane
	defer func() {
		for _, l := range lanes {
			for _, p := range l.reps {
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.cmd.Wait()
				p.unregister()
			}
		}
	}()
	env := []string{"MEGACONTEXT_DATA_SYNC=" + b.sync, "MEGACONTEXT_STORE_SYNCHRONOUS_COMMIT=" + b.synchronousCommit}
	for _, kind := range []string{"buntdb", "postgres"} {
		dataDir := filepath.Join(work, kind)
		var st store.Backend
		var args []string
		n := 1
		if kind == "postgres" {
			dsn, pg, stop, err := benchPostgres(nil)
			if err != nil {
				return err
			}
			defer stop()
			st, args, n = pg, []string{"--store", "postgres", "--dsn", dsn}, b.n
		} else {
			args = []string{"--store", "buntdb", "--data", dataDir}
		}
		eng, err := memory.Open(memory.Options{Store: st, Dir: dataDir, Sync: store.Sync(b.sync), Counter: &proxy.UpstreamCounter{Client: up, Timeout: 5 * time.Second}})
		if err != nil {
			return err
		}
		// The same history in both stores.
		err = preloadHistory(eng, []memory.Key{{Tenant: "default", Context: "bench"}}, b.history, rand.New(rand.NewPCG(1, 2)))
		eng.Close()
		if err != nil {
			return err
		}
		l := &lane{kind: kind, msgs: []map[string]string{{"role": "system", "content": "You are a helpful assistant."}}, before: map[string]float64{}}
		lanes = append(lanes, l)
		for i := range n {
			p, err := startReplica(bin, fake.URL(), append(args, "--log-level", "warn"), env, filepath.Join(work, fmt.Sprintf("%s%d.log", kind, i)))
			if err != nil {
				return err
			}
			l.reps = append(l.reps, p)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, l := range lanes {
		for _, p := range l.reps {
			if err := storeCounters(client, p.url, l.before); err != nil {
				return err
			}
		}
	}
	load0 := loadAverage()
	r := rand.New(rand.NewPCG(1, 2))
	for t := 0; t < b.turns+5; t++ {
		user := sentence(r, 50) // the same message to both
		for i := range lanes {
			l := lanes[(i+t)%len(lanes)] // each store first every other turn
			l.msgs = append(l.msgs, map[string]string{"role": "user", "content": user})
			body, _ := json.Marshal(map[string]any{"model": "m", "messages": l.msgs, "max_tokens": 256})
			directBody, _ := json.Marshal(map[string]any{"model": "m", "messages": l.msgs, "max_tokens": 256, "bench_direct": true})
			d, _, err := post(client, fake.URL()+"/v1/chat/completions", directBody, nil)
			if err != nil {
				return fmt.Errorf("direct: %w", err)
			}
			v, reply, err := post(client, l.reps[t%len(l.reps)].url+"/v1/chat/completions", body, map[string]string{"X-MegaContext-Id": "bench"})
			if err != nil {
				return fmt.Errorf("%s replica %d: %w", l.kind, t%len(l.reps), err)
			}
			l.msgs = append(l.msgs, map[string]string{"role": "assistant", "content": reply})
			if t >= 5 {
				l.overhead = append(l.overhead, v-d)
			}
			if len(l.msgs) > 60 {
				l.msgs = l.msgs[:1]
			}
		}
	}
	load1 := loadAverage()
	bunt, pg := lanes[0], lanes[1]
	diff := make([]float64, len(pg.overhead))
	for i := range diff {
		diff[i] = pg.overhead[i] - bunt.overhead[i]
	}
	res := map[string]any{"replicas": b.n, "history_tokens": b.history, "turns": b.turns, "sync": b.sync,
		"load_average": []string{load0, load1}, "pg_minus_embedded_p50_ms": pct(pg.overhead, 50) - pct(bunt.overhead, 50),
		"paired_difference_p50_ms": pct(diff, 50)}
	if !jsonOut {
		fmt.Printf("paired turns, history %d tokens, embedded store (1 replica) and PostgreSQL (%d replica(s)); load average before %s, after %s\n",
			b.history, b.n, load0, load1)
	}
	for _, l := range lanes {
		after := map[string]float64{}
		for _, p := range l.reps {
			if err := storeCounters(client, p.url, after); err != nil {
				return err
			}
		}
		perTurn := func(name string) float64 { return 1000 * (after[name] - l.before[name]) / float64(b.turns+5) }
		res[l.kind] = map[string]float64{"overhead_ms_p50": pct(l.overhead, 50), "overhead_ms_p99": pct(l.overhead, 99),
			"check_ms_per_turn": perTurn("check_seconds"), "write_ms_per_turn": perTurn("write_seconds"), "write_wait_ms_per_turn": perTurn("write_wait_seconds")}
		if !jsonOut {
			fmt.Printf("%-8s added p50 %.2f ms p99 %.2f ms; store per turn: checks %.2f ms, writes %.2f ms (the request waited %.2f ms of them)\n",
				l.kind, pct(l.overhead, 50), pct(l.overhead, 99), perTurn("check_seconds"), perTurn("write_seconds"), perTurn("write_wait_seconds"))
		}
	}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("PostgreSQL minus embedded: p50 of each %+.2f ms; p50 of the turn-by-turn differences %+.2f ms\n",
		pct(pg.overhead, 50)-pct(bunt.overhead, 50), pct(diff, 50))
	return nil
}

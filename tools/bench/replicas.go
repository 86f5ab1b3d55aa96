package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/proxy"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// replicaBench measures the real binary as deployed: n replica processes
// on the store (the embedded one: n must be 1; PostgreSQL: a durable
// throwaway server of the bench's own), one fakellama upstream, a
// preloaded history of --history tokens. It reports the latency each turn
// adds (direct to the upstream against through a replica, interleaved,
// turns spread round robin over the replicas, each resending the whole
// conversation), the throughput of concurrent clients, and each replica's
// RSS. Everything runs on this machine: client, upstream, replicas and
// database share its cores.
//
//	go run ./tools/bench --replicas 3 --store postgres --history 100000 --turns 200
type replicaBench struct {
	n, history, turns, clients, perClient int
	kind                                  string
	sync                                  string
	// synchronousCommit is each replica's store.synchronous_commit
	// ("auto": as data_sync, --sync, makes it).
	synchronousCommit string
	// pgStats breaks the database's side of the latency phase down by
	// statement (pg_stat_statements) and WAL flush (pg_stat_wal).
	pgStats bool
	// cacheBytes is each replica's memory.cache_bytes (0: the default).
	cacheBytes int64
}

// replicaProc is one running replica.
type replicaProc struct {
	cmd *exec.Cmd
	url string
	// unregister takes the replica off the list a signal kills.
	unregister func()
}

func (b replicaBench) run(jsonOut bool) error {
	if b.kind == "buntdb" && b.n != 1 {
		return fmt.Errorf("the embedded store has one process: --replicas 1 with --store buntdb")
	}
	br, closeRig, err := newBinRig("megacontext-bench-replicas-")
	if err != nil {
		return err
	}
	defer closeRig()
	work, bin, fake := br.work, br.bin, br.fake

	// The store, preloaded with the history through an engine of the
	// bench's own that counts tokens as the replicas will.
	var args []string
	var st store.Backend
	// ping times one round trip to the database (postgres only), to read
	// the added latency against: a turn makes three.
	var ping func() (float64, error)
	// db reads the database's statistics (--pg-stats).
	var db *pgx.Conn
	dataDir := filepath.Join(work, "data")
	switch b.kind {
	case "postgres":
		settings := map[string]string{}
		if b.pgStats {
			settings["shared_preload_libraries"] = "pg_stat_statements"
			settings["pg_stat_statements.track"] = "all"
			settings["track_wal_io_timing"] = "on"
		}
		dsn, pg, stop, err := benchPostgres(settings)
		if err != nil {
			return err
		}
		defer stop()
		st = pg
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		ping = func() (float64, error) {
			t0 := time.Now()
			_, err := conn.Exec(context.Background(), "SELECT 1")
			return float64(time.Since(t0).Microseconds()) / 1000, err
		}
		if b.pgStats {
			db = conn
		}
		args = []string{"--store", "postgres", "--dsn", dsn}
	case "buntdb":
		args = []string{"--store", "buntdb", "--data", dataDir}
	default:
		return fmt.Errorf("--store %q: want buntdb or postgres", b.kind)
	}
	up, err := upstream.New(upstream.Options{BaseURL: fake.URL()})
	if err != nil {
		return err
	}
	defer up.Close()
	if _, err := up.Discover(context.Background()); err != nil {
		return err
	}
	eng, err := memory.Open(memory.Options{Store: st, Dir: dataDir, Sync: store.Sync(b.sync), Counter: &proxy.UpstreamCounter{Client: up, Timeout: 5 * time.Second}})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	keys := []memory.Key{{Tenant: "default", Context: "bench"}}
	for c := range b.clients {
		keys = append(keys, memory.Key{Tenant: "default", Context: fmt.Sprintf("load-%d", c)})
	}
	start := time.Now()
	if err := preloadHistory(eng, keys, b.history, r); err != nil {
		eng.Close()
		return err
	}
	preload := time.Since(start)
	eng.Close() // the embedded store's folder is the replica's now

	reps := make([]*replicaProc, b.n)
	defer func() {
		for _, p := range reps {
			if p != nil {
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.cmd.Wait()
				p.unregister()
			}
		}
	}()
	env := []string{"MEGACONTEXT_DATA_SYNC=" + b.sync, "MEGACONTEXT_STORE_SYNCHRONOUS_COMMIT=" + b.synchronousCommit}
	if b.cacheBytes != 0 {
		env = append(env, fmt.Sprintf("MEGACONTEXT_MEMORY_CACHE_BYTES=%d", b.cacheBytes))
	}
	for i := range reps {
		if reps[i], err = startReplica(bin, fake.URL(), append(args, "--log-level", "warn"), env, filepath.Join(work, fmt.Sprintf("replica%d.log", i))); err != nil {
			return err
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	load0 := loadAverage()
	before := map[string]float64{}
	for _, p := range reps {
		if err := storeCounters(client, p.url, before); err != nil {
			return err
		}
	}
	if db != nil {
		if err := resetPgStats(db); err != nil {
			return err
		}
	}

	// Latency: one conversation, each turn through the next replica.
	var direct, via, overhead, rtt []float64
	msgs := []map[string]string{{"role": "system", "content": "You are a helpful assistant."}}
	for t := 0; t < b.turns+5; t++ {
		msgs = append(msgs, map[string]string{"role": "user", "content": sentence(r, 50)})
		body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs, "max_tokens": 256})
		directBody, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs, "max_tokens": 256, "bench_direct": true})
		d, _, err := post(client, fake.URL()+"/v1/chat/completions", directBody, nil)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		v, reply, err := post(client, reps[t%b.n].url+"/v1/chat/completions", body, map[string]string{"X-MegaContext-Id": "bench"})
		if err != nil {
			return fmt.Errorf("replica %d: %w", t%b.n, err)
		}
		msgs = append(msgs, map[string]string{"role": "assistant", "content": reply})
		if t >= 5 {
			direct, via, overhead = append(direct, d), append(via, v), append(overhead, v-d)
			if ping != nil {
				p, err := ping()
				if err != nil {
					return fmt.Errorf("database round trip: %w", err)
				}
				rtt = append(rtt, p)
			}
		}
		if len(msgs) > 60 {
			msgs = msgs[:1]
		}
	}

	// What the store took on the request path during those turns, from
	// the replicas' counters (background writes, embeddings say, count
	// too), and the database's own account of it.
	latency := map[string]float64{}
	for _, p := range reps {
		if err := storeCounters(client, p.url, latency); err != nil {
			return err
		}
	}
	perTurn := func(name string) float64 { return (latency[name] - before[name]) / float64(b.turns+5) }
	storeMs := map[string]float64{
		"checks_per_turn": perTurn("checks"), "check_ms_per_turn": 1000 * perTurn("check_seconds"),
		"writes_per_turn": perTurn("writes"), "write_ms_per_turn": 1000 * perTurn("write_seconds"),
		"write_wait_ms_per_turn": 1000 * perTurn("write_wait_seconds"),
	}
	var stats *pgStats
	if db != nil {
		if stats, err = readPgStats(db, b.turns+5); err != nil {
			return err
		}
	}
	load1 := loadAverage()

	// Throughput: clients at once, each its own preloaded memory, turns
	// round robin over the replicas.
	var wg sync.WaitGroup
	errs := make(chan error, b.clients)
	t0 := time.Now()
	for c := range b.clients {
		wg.Go(func() {
			rc := rand.New(rand.NewPCG(uint64(c), 9))
			conv := []map[string]string{{"role": "system", "content": "You are a helpful assistant."}}
			for t := range b.perClient {
				conv = append(conv, map[string]string{"role": "user", "content": sentence(rc, 50)})
				body, _ := json.Marshal(map[string]any{"model": "m", "messages": conv, "max_tokens": 256})
				_, reply, err := post(client, reps[(c+t)%b.n].url+"/v1/chat/completions", body, map[string]string{"X-MegaContext-Id": fmt.Sprintf("load-%d", c)})
				if err != nil {
					errs <- err
					return
				}
				conv = append(conv, map[string]string{"role": "assistant", "content": reply})
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	reqs := b.clients * b.perClient

	// RSS, and what each replica's cache holds (memory.cache_bytes bounds
	// the charge: whether the bound bit shows in the contexts held).
	rss, cacheMiB, cached := make([]float64, b.n), make([]float64, b.n), make([]float64, b.n)
	counters := map[string]float64{}
	for i, p := range reps {
		rss[i] = rssMiB(p.cmd.Process.Pid)
		if err := storeCounters(client, p.url, counters); err != nil {
			return err
		}
		ms, err := metrics(client, p.url)
		if err != nil {
			return err
		}
		cacheMiB[i], cached[i] = ms["megacontext_cache_bytes"]/(1<<20), ms["megacontext_cache_contexts"]
	}
	res := map[string]any{
		"store": b.kind, "replicas": b.n, "history_tokens": b.history, "turns": b.turns, "sync": b.sync,
		"synchronous_commit": b.synchronousCommit, "preload_s": preload.Seconds(), "store_per_turn": storeMs,
		"load_average":  []string{load0, load1},
		"direct_ms_p50": pct(direct, 50), "proxy_ms_p50": pct(via, 50), "proxy_ms_p99": pct(via, 99),
		"overhead_ms_p50": pct(overhead, 50), "overhead_ms_p99": pct(overhead, 99),
		"clients": b.clients, "requests": reqs, "throughput_rps": float64(reqs) / wall.Seconds(),
		"rss_mib": rss, "cache_bytes": b.cacheBytes, "cache_charge_mib": cacheMiB, "cache_contexts": cached, "store_counters": counters,
	}
	if len(rtt) > 0 {
		res["db_round_trip_ms_p50"] = pct(rtt, 50)
	}
	if stats != nil {
		res["pg_stats"] = stats
	}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("store %s, %d replica(s), history %d tokens (preload %.1fs)\n", b.kind, b.n, b.history, preload.Seconds())
	fmt.Printf("latency: direct p50 %.2f ms; through a replica p50 %.2f ms p99 %.2f ms; added p50 %.2f ms p99 %.2f ms\n",
		pct(direct, 50), pct(via, 50), pct(via, 99), pct(overhead, 50), pct(overhead, 99))
	fmt.Printf("load average (1, 5, 15 min) before the turns %s, after %s\n", load0, load1)
	fmt.Printf("store per turn (replicas' counters, latency phase): %.2f checks %.2f ms, %.2f writes %.2f ms (the request waited %.2f ms of them)\n",
		storeMs["checks_per_turn"], storeMs["check_ms_per_turn"], storeMs["writes_per_turn"], storeMs["write_ms_per_turn"], storeMs["write_wait_ms_per_turn"])
	if len(rtt) > 0 {
		fmt.Printf("database round trip (SELECT 1 from the bench, between turns) p50 %.2f ms: a turn makes %.2f (its checks and writes)\n",
			pct(rtt, 50), storeMs["checks_per_turn"]+storeMs["writes_per_turn"])
	}
	if stats != nil {
		stats.print()
	}
	fmt.Printf("store counters, all replicas: %v\n", counters)
	fmt.Printf("throughput: %d clients, %d requests in %.1fs: %.1f requests/s\n", b.clients, reqs, wall.Seconds(), float64(reqs)/wall.Seconds())
	cache := "the default cache_bytes (256 MiB)"
	if b.cacheBytes != 0 {
		cache = fmt.Sprintf("cache_bytes %d", b.cacheBytes)
	}
	fmt.Printf("RSS per replica (MiB), %s, %d memories of %d tokens: %.0f; each cache's charge %.1f MiB holding %v contexts\n",
		cache, len(keys), b.history, rss, cacheMiB, cached)
	return nil
}

// startReplica runs the binary on a free port, with env added to the
// bench's environment, and waits until it answers.
func startReplica(bin, upstreamURL string, args, env []string, logPath string) (*replicaProc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", addr, "--upstream", upstreamURL}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	unregister, err := startChild(cmd)
	if err != nil {
		return nil, err
	}
	p := &replicaProc{cmd: cmd, url: "http://" + addr, unregister: unregister}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		time.Sleep(50 * time.Millisecond) // poll until it listens
	}
	cmd.Process.Kill()
	cmd.Wait()
	unregister()
	b, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("replica on %s not ready: %s", addr, b)
}

// storeCounters adds a replica's megacontext_store_*_total counters
// (contexts read whole, caught up, operations redone) to into.
func storeCounters(client *http.Client, url string, into map[string]float64) error {
	ms, err := metrics(client, url)
	for name, v := range ms {
		if n, found := strings.CutPrefix(name, "megacontext_store_"); found && strings.HasSuffix(n, "_total") {
			into[strings.TrimSuffix(n, "_total")] += v
		}
	}
	return err
}

// metrics reads a replica's /metrics samples without labels, by name.
func metrics(client *http.Client, url string) (map[string]float64, error) {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && !strings.HasPrefix(name, "#") && !strings.Contains(name, "{") {
			out[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	return out, sc.Err()
}

// rssMiB reads a process's resident set size.
func rssMiB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return kb / 1024
		}
	}
	return 0
}

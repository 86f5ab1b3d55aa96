package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestStopStartKeepsData: committed rows survive a fast stop and an
// immediate (crash) stop, and the server comes back on the same port.
func TestStopStartKeepsData(t *testing.T) {
	s := Own(t, Options{})
	ctx := context.Background()
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE kept (n int)")
	exec("INSERT INTO kept VALUES (1)")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, s.DSN("postgres")); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	exec("INSERT INTO kept VALUES (2)")
	if err := s.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT sum(n) FROM kept").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("sum after restarts = %d, want 3", n)
	}
}

// TestNewDBIsolated: each test database starts empty.
func TestNewDBIsolated(t *testing.T) {
	ctx := context.Background()
	for i := range 2 {
		conn, err := pgx.Connect(ctx, NewDB(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE only_here (n int)"); err != nil {
			t.Fatalf("database %d: %v", i, err)
		}
		conn.Close(ctx)
	}
}

// TestServerDiesWithItsParent: a test binary killed with SIGKILL (a
// timeout, a crash) takes its server down with it.
func TestServerDiesWithItsParent(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		s, err := Start(Options{})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		s.mu.Lock()
		fmt.Println("PID", s.proc.Process.Pid, s.Dir)
		s.mu.Unlock()
		time.Sleep(time.Hour)
	}
	Shared(t) // skips like every other test when PostgreSQL is missing
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithItsParent$")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "PID" {
		cmd.Process.Kill()
		t.Fatalf("child said %q", line)
	}
	pid, _ := strconv.Atoi(f[1])
	defer os.RemoveAll(f[2])
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("postgres %d not running: %v", pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The postmaster is the child's child: once reparented it is reaped by
	// init, so poll until it is gone.
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postgres %d outlived its parent by 30 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

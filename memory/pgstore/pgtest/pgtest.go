// Package pgtest starts throwaway PostgreSQL servers for tests: a cluster
// made with initdb in a temporary folder, its postmaster run as a child of
// the test process on a free loopback port, as an unprivileged user when
// the test runs as root (PostgreSQL refuses to run as root). The server
// dies with the process that started it (a parent-death signal), so a
// test binary killed by a timeout leaves no server behind.
//
// Tests share one server per test binary (Shared) and take a fresh
// database each (NewDB); tests that stop and start the database take a
// server of their own (Start).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the environment variable that turns a missing
// PostgreSQL into a test failure instead of a skip (CI sets it, since its
// .ci/run installs PostgreSQL).
const RequireEnv = "MEGACONTEXT_REQUIRE_POSTGRES"

// ErrNotInstalled means no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL is not installed (no initdb and postgres in PATH or /usr/lib/postgresql/*/bin; Debian: apt-get install postgresql)")

// Options configure Start.
type Options struct {
	// Durable keeps fsync on (the default is off: a test server trades
	// power-loss safety, which no test can observe, for speed). Benchmarks
	// that compare against a durable embedded store set it.
	Durable bool
	// Settings are extra server settings (name to value), e.g.
	// "max_connections".
	Settings map[string]string
}

// Server is one running (or stopped) PostgreSQL cluster.
type Server struct {
	// Dir is the temporary folder holding the cluster and its log.
	Dir string
	// Port is the loopback port the server listens on (kept across restarts).
	Port int

	bin  string
	data string
	log  string
	opts Options
	cred *syscall.Credential

	// mu guards proc: the running postmaster, nil while stopped.
	mu   sync.Mutex
	proc *exec.Cmd
	// exited is closed when proc's Wait returns; err is what it returned.
	exited chan struct{}
	err    error
}

// BinDir returns the folder of the PostgreSQL server binaries: the one of
// initdb in PATH, else the newest /usr/lib/postgresql/N/bin.
func BinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

// versionOf reads N from /usr/lib/postgresql/N/bin.
func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start makes a new cluster in a temporary folder and starts it.
func Start(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, opts: opts}
	if os.Geteuid() == 0 {
		if s.cred, err = unprivileged(); err != nil {
			return nil, err
		}
	}
	if s.Dir, err = os.MkdirTemp("", "megacontext-pg-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s.data = filepath.Join(s.Dir, "data")
	s.log = filepath.Join(s.Dir, "postgres.log")
	if s.cred != nil {
		if err := os.Chown(s.Dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			s.remove()
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Dir = s.Dir
	if out, err := initdb.CombinedOutput(); err != nil {
		s.remove()
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	// A free port can be taken between picking and binding: try a few.
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			s.remove()
			return nil, err
		}
		if err = s.StartAgain(); err == nil {
			return s, nil
		}
		if attempt == 4 || !strings.Contains(err.Error(), "could not") {
			s.remove()
			return nil, err
		}
	}
}

// unprivileged returns the credentials of the user "nobody", under which a
// root test process runs PostgreSQL.
func unprivileged() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs an unprivileged user for PostgreSQL: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: user nobody has ids %q/%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// spawner runs every postmaster start on one OS thread that never exits:
// a parent-death signal fires when the thread that started the child
// exits, not the process, and Go may end an idle thread.
var spawner = sync.OnceValue(func() chan func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range ch {
			f()
		}
	}()
	return ch
})

// StartAgain starts the stopped server on its port and waits until it
// accepts connections.
func (s *Server) StartAgain() error {
	exited, err := s.spawn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			s.mu.Lock()
			s.proc = nil
			werr := s.err
			s.mu.Unlock()
			return fmt.Errorf("pgtest: postgres exited at start: %v\n%s", werr, s.LogTail(2000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("pgtest: postgres not ready after 60 s: %v\n%s", err, s.LogTail(2000))
		}
	}
}

// spawn starts the postmaster and returns a channel closed when it exits.
func (s *Server) spawn() (chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil, errors.New("pgtest: server already running")
	}
	args := []string{"-D", s.data, "-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(s.Port),
		"-c", "unix_socket_directories=", "-c", "max_connections=300", "-c", "shared_buffers=32MB"}
	if !s.opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	keys := make([]string, 0, len(s.opts.Settings))
	for k := range s.opts.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+s.opts.Settings[k])
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.Dir
	// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its
	// backends down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	started := make(chan error)
	spawner() <- func() { started <- cmd.Start() }
	if err := <-started; err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	s.proc, s.exited, s.err = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(exited)
	}()
	return exited, nil
}

// Stop shuts the server down (fast shutdown: open sessions are cut,
// committed work stays) and waits for it to exit. Stopping a stopped server
// does nothing.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT) }

// Crash kills the server the way a power cut or an OOM kill would (an
// immediate shutdown: no checkpoint; committed work survives through the
// write-ahead log).
func (s *Server) Crash() error { return s.signal(syscall.SIGQUIT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	if err := proc.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: stop postgres: %w", err)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		_ = proc.Process.Kill()
		<-exited
	}
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	return nil
}

// Close stops the server and removes its folder.
func (s *Server) Close() error {
	err := s.Stop()
	s.remove()
	return err
}

func (s *Server) remove() { _ = os.RemoveAll(s.Dir) }

// DSN returns the connection string of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CreateDatabase creates a new empty database and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// DropDatabase drops a database, ending its sessions first.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// LogTail returns the last n bytes of the server's log.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// shared is the server of this test binary (Shared).
var shared struct {
	once sync.Once
	srv  *Server
	err  error
	n    int
	mu   sync.Mutex
}

// SharedServer returns this test binary's server, started on first use
// (Shared for callers without a testing.TB).
func SharedServer() (*Server, error) {
	shared.once.Do(func() { shared.srv, shared.err = Start(Options{}) })
	return shared.srv, shared.err
}

// Shared returns this test binary's server, started on first use. When
// PostgreSQL is not installed it skips t, or fails it when RequireEnv is
// set. Call Main from TestMain so that it is removed when the tests end.
func Shared(t testing.TB) *Server {
	t.Helper()
	if _, err := SharedServer(); err != nil {
		if errors.Is(shared.err, ErrNotInstalled) && os.Getenv(RequireEnv) == "" {
			t.Skipf("%v (set %s=1 to fail instead)", shared.err, RequireEnv)
		}
		t.Fatal(shared.err)
	}
	return shared.srv
}

// Own starts a server for t alone (a test that stops and starts it),
// closed when t ends; skipped like Shared.
func Own(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) && os.Getenv(RequireEnv) == "" {
			t.Skipf("%v (set %s=1 to fail instead)", err, RequireEnv)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// NewDB creates a fresh database on the shared server for t, dropped when
// t ends, and returns its DSN.
func NewDB(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	shared.mu.Lock()
	shared.n++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), shared.n)
	shared.mu.Unlock()
	dsn, err := s.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.DropDatabase(context.Background(), name); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return dsn
}

// Main runs the tests of m and then removes the shared server, if one was
// started: use it as `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }`.
func Main(m *testing.M) int {
	code := m.Run()
	StopShared()
	return code
}

// StopShared removes the shared server, if one was started (for a TestMain
// that does more than Main).
func StopShared() {
	if shared.srv != nil {
		shared.srv.Close()
	}
}

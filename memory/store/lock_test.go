package store

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// holdEnv makes the test binary a helper process that opens the store in
// the named directory, says "ready", and waits to be killed.
const holdEnv = "MEGACONTEXT_STORE_TEST_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		s, err := Open(dir, SyncSecond)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(2)
		}
		os.Stdout.WriteString("ready\n")
		// Block until killed; the lock must die with the process.
		_, _ = os.Stdin.Read(make([]byte, 1))
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func skipWithoutFlock(t *testing.T) {
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly":
	default:
		t.Skipf("no flock on %s: the data directory is not locked there", runtime.GOOS)
	}
}

func TestSecondOpenInProcessRefused(t *testing.T) {
	skipWithoutFlock(t)
	dir := t.TempDir()
	s, err := Open(dir, SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, SyncSecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %q names neither the directory %s nor the holder's pid %d", err, dir, os.Getpid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, SyncSecond)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
	// In memory there is no directory to lock: any number of stores.
	a, err := Open("", SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open("", SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestLockHeldByAnotherProcessDiesWithIt: a real second process holds the
// directory; Open here names its pid; after kill -9 (no Close, no
// cleanup) the directory opens again, with the stale lock file still there.
func TestLockHeldByAnotherProcessDiesWithIt(t *testing.T) {
	skipWithoutFlock(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper process: %q, %v", line, err)
	}
	_, err = Open(dir, SyncSecond)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("Open while pid %d holds the directory: %v", cmd.Process.Pid, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, LockFileName)); err != nil {
		t.Fatalf("the killed process's lock file should still be there: %v", err)
	}
	s, err := Open(dir, SyncSecond)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	s.Close()
}

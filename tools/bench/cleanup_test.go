package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roleEnv makes the test binary play a part in TestSignalStopsChildren:
// "bench" (starts a child as the bench starts a replica, then waits for a
// signal) or "child" (waits to be killed).
const roleEnv = "MEGACONTEXT_BENCH_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "bench":
		cleanUpOnSignal()
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), roleEnv+"=child")
		child.Stdout = os.Stdout // the test's pipe: held open while the child lives
		if _, err := startChild(child); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(child.Process.Pid)
		time.Sleep(10 * time.Minute) // until the test's signal
		os.Exit(0)
	case "child":
		time.Sleep(10 * time.Minute) // until killed
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSignalStopsChildren: a bench stopped with SIGTERM or SIGINT takes
// the processes it started (the replicas) down with it, and exits with
// the shell's code for the signal. (They used to keep serving.) The test
// knows the child is gone when the pipe it holds as its stdout closes.
func TestSignalStopsChildren(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			bench := exec.Command(os.Args[0], "-test.run=^$")
			bench.Env = append(os.Environ(), roleEnv+"=bench")
			bench.Stdout, bench.Stderr = w, os.Stderr
			if err := bench.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			out := bufio.NewReader(r)
			line, err := out.ReadString('\n')
			if err != nil {
				bench.Process.Kill()
				bench.Wait()
				t.Fatalf("the bench started no child: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Kill(pid, syscall.SIGKILL) // a child that outlived a failed test
			if err := bench.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, out)
				closed <- err
			}()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the child (pid %d) outlived the bench stopped by %v", pid, sig)
			}
			err = bench.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 128+int(sig) {
				t.Errorf("the bench stopped by %v exited with %v, want code %d", sig, err, 128+int(sig))
			}
		})
	}
}

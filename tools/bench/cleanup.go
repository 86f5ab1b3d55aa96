package main

import (
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
)

// Go runs no deferred call when a signal ends a process: a bench stopped
// with Ctrl-C or SIGTERM (a timeout's kill) would leave its replica
// processes serving and its temporary folders behind. Whatever must not
// outlive the bench is registered here (atExit) and run, newest first, on
// SIGINT or SIGTERM, before the bench exits with the shell's code for the
// signal. Children also get a parent-death signal where the system has
// one (Linux), for a bench killed with SIGKILL.

// cleanups are the registered functions, by registration number.
var cleanups struct {
	mu sync.Mutex
	// fns maps a registration number to its function; next numbers the
	// next registration (newer ones run first).
	fns  map[int]func()
	next int
}

// atExit registers f to run if a signal stops the bench; the returned
// function unregisters it (the bench cleans up itself on a normal exit).
func atExit(f func()) (unregister func()) {
	cleanups.mu.Lock()
	defer cleanups.mu.Unlock()
	if cleanups.fns == nil {
		cleanups.fns = map[int]func(){}
	}
	id := cleanups.next
	cleanups.next++
	cleanups.fns[id] = f
	return func() {
		cleanups.mu.Lock()
		defer cleanups.mu.Unlock()
		delete(cleanups.fns, id)
	}
}

// cleanUpOnSignal makes SIGINT and SIGTERM run the registered functions
// and exit.
func cleanUpOnSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cleanups.mu.Lock()
		ids := make([]int, 0, len(cleanups.fns))
		for id := range cleanups.fns {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		fns := make([]func(), 0, len(ids))
		for _, id := range slices.Backward(ids) {
			fns = append(fns, cleanups.fns[id])
		}
		cleanups.fns = nil
		cleanups.mu.Unlock()
		for _, f := range fns {
			f()
		}
		code := 130 // SIGINT
		if sig == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()
}

// startChild starts cmd as a child that does not outlive the bench: it is
// killed (and waited for) if a signal stops the bench, and on Linux when
// the bench dies any other way. stop unregisters it; the caller stops and
// waits for it itself on a normal exit.
func startChild(cmd *exec.Cmd) (stop func(), err error) {
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return atExit(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}), nil
}

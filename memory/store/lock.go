package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFileName is the lock file inside the data directory. It holds the
// pid of the process that owns the directory; the lock itself is the
// kernel's (flock), so it is released when that process exits in any way,
// kill -9 included, and a stale file left behind locks nothing.
const LockFileName = "megacontext.lock"

// ErrLocked means another process holds the data directory: two writers
// on one buntdb file would overwrite each other's records.
var ErrLocked = errors.New("store: data directory in use by another process")

// dirLock is an exclusive lock on a data directory, held from Open to Close.
type dirLock struct {
	f *os.File
}

// lockDir takes the exclusive lock of dir without waiting. When another
// process holds it, the error wraps ErrLocked and names the directory and
// the holder's pid.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: open lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	if held {
		pid := "unknown"
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
			pid = strings.TrimSpace(string(b))
		}
		f.Close()
		abs, err := filepath.Abs(dir)
		if err != nil {
			abs = dir
		}
		return nil, fmt.Errorf("%w: %s is locked by pid %s (%s); stop that process or choose another data directory", ErrLocked, abs, pid, path)
	}
	// Record the holder for the next process that finds the lock taken.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock. The file stays: removing it would let a third
// process lock a new file while a second still waits on the old one.
func (l *dirLock) release() error {
	if l == nil {
		return nil
	}
	_ = unlock(l.f)
	return l.f.Close()
}

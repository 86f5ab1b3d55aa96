// Package store persists MegaContext records in an embedded buntdb database:
// an append-only file that survives process crashes, with every record also
// held in memory for fast scans.
package store

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/buntdb"
)

// Sync says when writes reach the disk.
type Sync string

// Sync policies.
const (
	// SyncAlways fsyncs every transaction: survives power loss, costs a disk flush per write.
	SyncAlways Sync = "always"
	// SyncSecond fsyncs once a second: survives process crashes (kill -9) fully,
	// power loss up to the last second.
	SyncSecond Sync = "second"
)

// FileName is the database file inside the data directory.
const FileName = "megacontext.db"

// Store is a key-value store of string records. It is safe for concurrent use.
type Store struct {
	db   *buntdb.DB
	path string
	// lock is the data directory's exclusive lock (nil in memory).
	lock *dirLock
	// wmu serializes the writes of a file-backed store, so that at most one
	// journal (journal.go) is live and no other write lands between a
	// journal and the records it covers.
	wmu sync.Mutex
	// journalLive, under wmu, says that the file may hold a journal
	// record: the last journaled write's (journal.go), kept until the next
	// journaled write overwrites it. A write of a single record and Close
	// delete it first, so that the journal on disk always belongs to the
	// last write and an Open never undoes a later one with it.
	journalLive bool
}

// KV is one record.
type KV struct{ Key, Value string }

// Open opens (creating when missing) the store in dir and locks dir for
// this process until Close: while another process holds it, Open fails
// with ErrLocked. An empty dir keeps everything in memory only.
func Open(dir string, sync Sync) (*Store, error) {
	path := ":memory:"
	var lock *dirLock
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: create data dir: %w", err)
		}
		var err error
		if lock, err = lockDir(dir); err != nil {
			return nil, err
		}
		path = filepath.Join(dir, FileName)
	}
	s, err := openDB(path, sync)
	if err != nil {
		_ = lock.release()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// openDB opens the buntdb file at path with the sync policy.
func openDB(path string, sync Sync) (*Store, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var cfg buntdb.Config
	if err := db.ReadConfig(&cfg); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: read config: %w", err)
	}
	switch sync {
	case SyncAlways:
		cfg.SyncPolicy = buntdb.Always
	case SyncSecond, "":
		cfg.SyncPolicy = buntdb.EverySecond
	default:
		db.Close()
		return nil, fmt.Errorf("store: unknown sync policy %q", sync)
	}
	if err := db.SetConfig(cfg); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: set config: %w", err)
	}
	s := &Store{db: db, path: path}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close deletes a live journal (a store closed cleanly holds none, so a
// release that cannot read its digests still opens it), flushes and closes
// the store, then releases the data directory.
func (s *Store) Close() error {
	s.wmu.Lock()
	err := s.clearJournal()
	s.wmu.Unlock()
	err = errors.Join(err, s.db.Close())
	if lerr := s.lock.release(); err == nil {
		err = lerr
	}
	return err
}

// Put writes records atomically: all or none, in memory and on disk,
// whatever point a kill -9 cuts the write at (see journal.go).
func (s *Store) Put(kvs ...KV) error {
	if len(kvs) == 0 {
		return nil
	}
	for _, kv := range kvs {
		if kv.Key == journalKey {
			return fmt.Errorf("store: write: the key %q is the store's own", kv.Key)
		}
	}
	set := func(tx *buntdb.Tx) error {
		for _, kv := range kvs {
			if _, _, err := tx.Set(kv.Key, kv.Value, nil); err != nil {
				return fmt.Errorf("set %q: %w", kv.Key, err)
			}
		}
		return nil
	}
	var err error
	if len(kvs) == 1 {
		// One record is all or nothing on disk already.
		err = s.single(set)
	} else {
		err = s.journaled(func(tx *buntdb.Tx) ([]journalOp, error) { return undoOps(tx, kvs) }, set)
	}
	if err != nil {
		return fmt.Errorf("store: write: %w", err)
	}
	return nil
}

// single runs a write of one record: serialized with journaled writes, so
// that a journal never undoes it.
func (s *Store) single(fn func(tx *buntdb.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.clearJournal(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// undoOps returns the journal that undoes setting kvs: each key's value
// before, or its deletion where it was absent, with the digest of the
// value kvs sets it to (the last, where kvs sets a key twice).
func undoOps(tx *buntdb.Tx, kvs []KV) ([]journalOp, error) {
	ops := make([]journalOp, 0, len(kvs))
	at := make(map[string]int, len(kvs))
	for _, kv := range kvs {
		if i, ok := at[kv.Key]; ok {
			ops[i].Done = digest(kv.Value)
			continue
		}
		at[kv.Key] = len(ops)
		old, err := tx.Get(kv.Key)
		switch {
		case errors.Is(err, buntdb.ErrNotFound):
			ops = append(ops, journalOp{Op: opDelDone, Key: kv.Key, Done: digest(kv.Value)})
		case err != nil:
			return nil, err
		default:
			ops = append(ops, journalOp{Op: opSetDone, Key: kv.Key, Value: old, Done: digest(kv.Value)})
		}
	}
	return ops, nil
}

// Get returns the record of key; ok is false when absent.
func (s *Store) Get(key string) (value string, ok bool, err error) {
	err = s.db.View(func(tx *buntdb.Tx) error {
		if key == journalKey {
			return nil
		}
		v, err := tx.Get(key)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		value, ok = v, true
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("store: get %q: %w", key, err)
	}
	return value, ok, nil
}

// Scan calls fn for every record whose key starts with prefix, in key
// order, until fn returns false.
func (s *Store) Scan(prefix string, fn func(key, value string) bool) error {
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", prefix, func(k, v string) bool {
			if !strings.HasPrefix(k, prefix) {
				return false
			}
			if k == journalKey {
				return true
			}
			return fn(k, v)
		})
	})
	if err != nil {
		return fmt.Errorf("store: scan %q: %w", prefix, err)
	}
	return nil
}

// Delete removes the records of keys and every record whose key starts
// with one of prefixes, atomically, and returns how many were removed. On
// disk a Delete cut short by a kill is finished at the next Open (its
// journal lists the keys, see journal.go).
func (s *Store) Delete(exact []string, prefixes []string) (int, error) {
	var keys []string
	collect := func(tx *buntdb.Tx) ([]journalOp, error) {
		keys = nil
		seen := map[string]bool{}
		add := func(k string) {
			if k != journalKey && !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		for _, k := range exact {
			if _, err := tx.Get(k); err == nil {
				add(k)
			} else if !errors.Is(err, buntdb.ErrNotFound) {
				return nil, err
			}
		}
		for _, p := range prefixes {
			err := tx.AscendGreaterOrEqual("", p, func(k, _ string) bool {
				if !strings.HasPrefix(k, p) {
					return false
				}
				add(k)
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		ops := make([]journalOp, len(keys))
		for i, k := range keys {
			ops[i] = journalOp{Op: opDel, Key: k}
		}
		return ops, nil
	}
	n := 0
	remove := func(tx *buntdb.Tx) error {
		n = 0
		for _, k := range keys {
			_, err := tx.Delete(k)
			if errors.Is(err, buntdb.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			n++
		}
		return nil
	}
	err := s.journaled(collect, remove)
	if err != nil {
		return 0, fmt.Errorf("store: delete: %w", err)
	}
	return n, nil
}

// Compact rewrites the database file with only the current value of each
// record (buntdb's Shrink): the file is an append-only log that otherwise
// keeps every earlier value until buntdb shrinks it on its own. It returns
// once a rewrite that started after the call has finished, so that nothing
// written before the call survives in the file but current values: a
// rewrite already running (buntdb's automatic one may have copied a record
// before it changed) is waited for, then another one runs.
func (s *Store) Compact() error {
	// The live journal holds earlier values (what the last write replaced,
	// an erased text among them): it goes first.
	s.wmu.Lock()
	err := s.clearJournal()
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := s.db.Shrink()
		if !errors.Is(err, buntdb.ErrShrinkInProcess) {
			if err != nil {
				return fmt.Errorf("store: compact: %w", err)
			}
			return nil
		}
		time.Sleep(wait) // buntdb offers nothing to wait on
	}
}

// FileSize returns the size of the database file in bytes (0 in memory).
func (s *Store) FileSize() int64 {
	if s.path == ":memory:" {
		return 0
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Key joins key parts with ':' after escaping each, so no part can forge
// another's boundary.
func Key(parts ...string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = url.QueryEscape(p)
	}
	return strings.Join(esc, ":")
}

// Prefix is Key plus a trailing ':' for prefix scans of children.
func Prefix(parts ...string) string { return Key(parts...) + ":" }

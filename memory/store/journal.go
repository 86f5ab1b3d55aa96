package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"
)

// Why a journal: buntdb writes one transaction with one write(2) of its
// records, in the random order of a Go map, and a kill -9 can cut that
// write between pages (Linux stops a buffered write on a fatal signal).
// buntdb's load then drops only the incomplete last record and keeps the
// rest, so a transaction of many records can survive as any subset of
// them: a tree node without the one before it, a message without its
// header. A single record, by contrast, is all or nothing: a cut record is
// the last in the file, and load drops it.
//
// So a write of several records is made of two buntdb transactions, of
// which the first is a single record:
//
//  1. the journal record (journalKey): what to apply to undo the write (the
//     old value of every key a Put sets, absent keys to delete, each with a
//     digest of the value the Put sets) or, for a Delete, to finish it (the
//     keys it removes);
//  2. the records themselves.
//
// The journal outlives its write: it is not deleted after the records (a
// third transaction, and with SyncAlways a third fsync per write), but
// overwritten by the next write's journal, or deleted before a write of a
// single record (Store.single) and at Close. So a journal found at Open
// belongs to the last write, which either returned or was cut short:
// recover tells the two apart by the digests. When every key of a Put holds
// the value the Put set, the write is whole and the journal is only
// deleted; otherwise it is undone. A Delete's journal is applied either way
// (finishing a whole Delete removes nothing more). So every write is whole
// on disk or absent, and a returned write is never undone. Writes are
// serialized (Store.wmu) so that at most one journal is live.
//
// A journal of a release before the digests (ops 's' and 'd' only) was
// deleted after its write, so one found at Open is a write cut short: it
// is undone, as that release did. A release before the digests cannot
// read a journal with digests: a store closed cleanly holds none.

// journalKey is the key of the journal record. No schema key starts with
// a control byte, and Get, Scan and Delete never show it.
const journalKey = "\x00journal"

// journal ops. The upper-case ops carry a digest of what the write sets.
const (
	opSet     byte = 's'
	opDel     byte = 'd'
	opSetDone byte = 'S'
	opDelDone byte = 'D'
)

// journalOp is one step of a journal: set Key to Value, or delete Key.
type journalOp struct {
	Op         byte
	Key, Value string
	// Done, for opSetDone and opDelDone, is the digest (digest) of the
	// value the write sets Key to: Key holds it once the write is whole.
	Done string
}

// digest is what a journal keeps of a value a write sets: enough to tell
// it from the value before (a 16-byte SHA-256 prefix), not the value.
func digest(v string) string {
	d := sha256.Sum256([]byte(v))
	return string(d[:16])
}

// undo returns o's step without its digest: what recover applies.
func (o journalOp) undo() journalOp {
	switch o.Op {
	case opSetDone:
		o.Op = opSet
	case opDelDone:
		o.Op = opDel
	}
	o.Done = ""
	return o
}

// hasValue reports whether o's op sets a value, hasDone whether it
// carries a digest.
func (o journalOp) hasValue() bool { return o.Op == opSet || o.Op == opSetDone }
func (o journalOp) hasDone() bool  { return o.Op == opSetDone || o.Op == opDelDone }

// encodeJournal writes ops as op byte, uvarint length and bytes of the key,
// for a set the same for the value, and for an op with a digest the same
// for the digest: binary safe (vector records are bytes, not text).
func encodeJournal(ops []journalOp) string {
	n := 0
	for _, o := range ops {
		n += 1 + 3*binary.MaxVarintLen64 + len(o.Key) + len(o.Value) + len(o.Done)
	}
	b := make([]byte, 0, n)
	put := func(v string) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	for _, o := range ops {
		b = append(b, o.Op)
		put(o.Key)
		if o.hasValue() {
			put(o.Value)
		}
		if o.hasDone() {
			put(o.Done)
		}
	}
	return string(b)
}

// errBadJournal is a journal record that encodeJournal did not write.
var errBadJournal = errors.New("store: journal record unreadable")

// decodeJournal reads what encodeJournal wrote.
func decodeJournal(s string) ([]journalOp, error) {
	var ops []journalOp
	str := func() (string, error) {
		n, w := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if w <= 0 || n > uint64(len(s)-w) {
			return "", errBadJournal
		}
		v := s[w : w+int(n)]
		s = s[w+int(n):]
		return v, nil
	}
	for len(s) > 0 {
		o := journalOp{Op: s[0]}
		s = s[1:]
		switch o.Op {
		case opSet, opDel, opSetDone, opDelDone:
		default:
			return nil, errBadJournal
		}
		var err error
		if o.Key, err = str(); err != nil {
			return nil, err
		}
		if o.hasValue() {
			if o.Value, err = str(); err != nil {
				return nil, err
			}
		}
		if o.hasDone() {
			if o.Done, err = str(); err != nil {
				return nil, err
			}
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// journaled runs a write of several records as the two transactions
// above: prepare, in the first, reads what it needs and returns the
// journal's ops; apply, in the second, writes. The journal stays until the
// next write (journalLive). An in-memory store, which no kill can tear,
// runs prepare and apply in one transaction.
func (s *Store) journaled(prepare func(tx *buntdb.Tx) ([]journalOp, error), apply func(tx *buntdb.Tx) error) error {
	if s.path == ":memory:" {
		return s.db.Update(func(tx *buntdb.Tx) error {
			if _, err := prepare(tx); err != nil {
				return err
			}
			return apply(tx)
		})
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.db.Update(func(tx *buntdb.Tx) error {
		ops, err := prepare(tx)
		if err != nil {
			return err
		}
		_, _, err = tx.Set(journalKey, encodeJournal(ops), nil)
		return err
	})
	if err != nil {
		return err
	}
	// Whatever follows, a journal is on disk now (this one, or the last
	// write's when the Set above failed to reach it).
	s.journalLive = true
	if err := s.db.Update(apply); err != nil {
		// buntdb rolled the records back in memory and on disk. The journal
		// would undo nothing that is there, or finish a Delete that failed:
		// it goes.
		return errors.Join(err, s.clearJournal())
	}
	return nil
}

// clearJournal deletes the journal record, if one is live (journalLive):
// the write it covers is whole or rolled back. The caller holds wmu.
func (s *Store) clearJournal() error {
	if !s.journalLive {
		return nil
	}
	err := s.db.Update(func(tx *buntdb.Tx) error {
		_, err := tx.Delete(journalKey)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		return err
	})
	if err == nil {
		s.journalLive = false
	}
	return err
}

// recover finishes what the journal of the last write says (see above):
// nothing when the write is whole, else it undoes a Put or finishes a
// Delete; then it removes the journal. Cut short again, it runs again at
// the next Open: its ops are idempotent.
func (s *Store) recover() error {
	var ops []journalOp
	found, whole := false, false
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(journalKey)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if ops, err = decodeJournal(v); err != nil {
			return err
		}
		whole, err = writeWhole(tx, ops)
		return err
	})
	if err != nil || !found {
		return err
	}
	s.journalLive = true
	if !whole {
		err = s.db.Update(func(tx *buntdb.Tx) error {
			for _, o := range ops {
				o = o.undo()
				if o.Op == opSet {
					if _, _, err := tx.Set(o.Key, o.Value, nil); err != nil {
						return err
					}
					continue
				}
				if _, err := tx.Delete(o.Key); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: recover an interrupted write: %w", err)
		}
	}
	return s.clearJournal()
}

// writeWhole reports whether the write a journal of ops covers is whole:
// its ops carry digests, and every key holds the value the write set.
func writeWhole(tx *buntdb.Tx, ops []journalOp) (bool, error) {
	if len(ops) == 0 || !ops[0].hasDone() {
		return false, nil
	}
	for _, o := range ops {
		if !o.hasDone() {
			return false, nil
		}
		v, err := tx.Get(o.Key)
		if errors.Is(err, buntdb.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if digest(v) != o.Done {
			return false, nil
		}
	}
	return true, nil
}

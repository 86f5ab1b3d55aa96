package store

import (
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
// So a write of several records is made of three buntdb transactions of
// which the first and the last are single records:
//
//  1. the journal record (journalKey): what to apply to undo the write (the
//     old value of every key a Put sets, absent keys to delete) or, for a
//     Delete, to finish it (the keys it removes);
//  2. the records themselves;
//  3. the deletion of the journal record.
//
// A journal record found at Open belongs to a write that never returned
// (its caller acknowledged nothing): recover applies it, so that an
// interrupted Put is rolled back and an interrupted Delete rolled forward,
// and every write is whole on disk or absent. Writes are serialized
// (Store.wmu) so that at most one journal is live.

// journalKey is the key of the journal record. No schema key starts with
// a control byte, and Get, Scan and Delete never show it.
const journalKey = "\x00journal"

// journal ops.
const (
	opSet byte = 's'
	opDel byte = 'd'
)

// journalOp is one step of a journal: set Key to Value, or delete Key.
type journalOp struct {
	Op         byte
	Key, Value string
}

// encodeJournal writes ops as op byte, uvarint length and bytes of the key,
// and for a set the same for the value: binary safe (vector records are
// bytes, not text).
func encodeJournal(ops []journalOp) string {
	n := 0
	for _, o := range ops {
		n += 1 + 2*binary.MaxVarintLen64 + len(o.Key) + len(o.Value)
	}
	b := make([]byte, 0, n)
	for _, o := range ops {
		b = append(b, o.Op)
		b = binary.AppendUvarint(b, uint64(len(o.Key)))
		b = append(b, o.Key...)
		if o.Op == opSet {
			b = binary.AppendUvarint(b, uint64(len(o.Value)))
			b = append(b, o.Value...)
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
		if o.Op != opSet && o.Op != opDel {
			return nil, errBadJournal
		}
		var err error
		if o.Key, err = str(); err != nil {
			return nil, err
		}
		if o.Op == opSet {
			if o.Value, err = str(); err != nil {
				return nil, err
			}
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// journaled runs a write of several records as the three transactions
// above: prepare, in the first, reads what it needs and returns the
// journal's ops; apply, in the second, writes. An in-memory store, which
// no kill can tear, runs prepare and apply in one transaction.
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
	if err := s.db.Update(apply); err != nil {
		// buntdb rolled the records back in memory and on disk; the journal
		// would undo nothing that is there, or finish a Delete that failed.
		s.staleJournal = true
		return errors.Join(err, s.clearStale())
	}
	s.staleJournal = true
	return s.clearStale()
}

// clearStale deletes a journal that outlived its write (staleJournal);
// the caller holds wmu.
func (s *Store) clearStale() error {
	if !s.staleJournal {
		return nil
	}
	if err := s.clearJournal(); err != nil {
		return err
	}
	s.staleJournal = false
	return nil
}

// clearJournal deletes the journal record: the write it covers is whole.
func (s *Store) clearJournal() error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, err := tx.Delete(journalKey)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		return err
	})
}

// recover applies the journal a write cut short left (see above), then
// removes it. Cut short again, it runs again at the next Open: its ops are
// idempotent.
func (s *Store) recover() error {
	var ops []journalOp
	found := false
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(journalKey)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		ops, err = decodeJournal(v)
		return err
	})
	if err != nil || !found {
		return err
	}
	err = s.db.Update(func(tx *buntdb.Tx) error {
		for _, o := range ops {
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
	return s.clearJournal()
}

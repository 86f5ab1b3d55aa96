package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// This file holds what tests of crash safety (here and in memory) use to
// tear the store's file as a kill -9 would: it is small and has no effect
// unless called.

// FileCommand is one record command of the store's append-only file.
type FileCommand struct {
	// Bytes are the command as written.
	Bytes []byte
	// Journal reports a command on the journal record (journal.go), which
	// the store writes in a transaction of its own.
	Journal bool
}

// ReadCommands parses the commands of the store file in dir from byte
// offset from to the end (RESP arrays of bulk strings, as buntdb writes).
func ReadCommands(dir string, from int64) ([]FileCommand, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return nil, err
	}
	if from > int64(len(b)) {
		return nil, fmt.Errorf("store: offset %d past the file's %d bytes", from, len(b))
	}
	b = b[from:]
	var out []FileCommand
	for len(b) > 0 {
		n, key, err := parseCommand(b)
		if err != nil {
			return nil, err
		}
		out = append(out, FileCommand{Bytes: b[:n], Journal: key == journalKey})
		b = b[n:]
	}
	return out, nil
}

// parseCommand returns the length of the command at the start of b and
// its key (its second argument).
func parseCommand(b []byte) (int, string, error) {
	line := func(at int, mark byte) (int, int, error) {
		end := bytes.Index(b[at:], []byte("\r\n"))
		if end < 0 || b[at] != mark {
			return 0, 0, fmt.Errorf("store: no %c line at %d", mark, at)
		}
		n, err := strconv.Atoi(string(b[at+1 : at+end]))
		return n, at + end + 2, err
	}
	args, at, err := line(0, '*')
	if err != nil {
		return 0, "", err
	}
	key := ""
	for i := 0; i < args; i++ {
		n, next, err := line(at, '$')
		if err != nil {
			return 0, "", err
		}
		if next+n+2 > len(b) {
			return 0, "", fmt.Errorf("store: command cut at %d", next)
		}
		if i == 1 {
			key = string(b[next : next+n])
		}
		at = next + n + 2
	}
	return at, key, nil
}

// TearWrites splits cmds, the commands of writes made after a point, into
// the transactions buntdb made of them (a journal command alone, the
// records between journal commands together) and returns the bytes a kill
// could leave of them: every transaction before a random one whole, then a
// random subset of that one's commands in random order (buntdb writes a
// transaction's records in map order, and a kill cuts the write), possibly
// ending inside a command. From old code (no journal) the whole of cmds is
// one transaction.
func TearWrites(r *rand.Rand, cmds []FileCommand) []byte {
	var txs [][]FileCommand
	for i, c := range cmds {
		if c.Journal || i == 0 || cmds[i-1].Journal {
			txs = append(txs, nil)
		}
		txs[len(txs)-1] = append(txs[len(txs)-1], c)
	}
	var out []byte
	if len(txs) == 0 {
		return out
	}
	cut := r.IntN(len(txs))
	for _, tx := range txs[:cut] {
		for _, c := range tx {
			out = append(out, c.Bytes...)
		}
	}
	tx := append([]FileCommand(nil), txs[cut]...)
	r.Shuffle(len(tx), func(i, j int) { tx[i], tx[j] = tx[j], tx[i] })
	keep := r.IntN(len(tx) + 1)
	for _, c := range tx[:keep] {
		out = append(out, c.Bytes...)
	}
	if keep < len(tx) && r.IntN(2) == 0 {
		out = append(out, tx[keep].Bytes[:r.IntN(len(tx[keep].Bytes))]...)
	}
	return out
}

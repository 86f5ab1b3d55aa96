package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/megacontext/megacontext/memory/store"
)

// TestWrapTellsTimeoutsApart: every error that means the database cannot
// serve now is store.ErrUnavailable (503, /readyz), and of those only a
// call that ran past its time limit is also store.ErrTimeout, so that the
// client is told the write may have been committed rather than that the
// database is down.
func TestWrapTellsTimeoutsApart(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name                 string
		err                  error
		unavailable, timeout bool
	}{
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), true, true},
		{"connection refused", refused, true, false},
		{"eof", io.ErrUnexpectedEOF, true, false},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, true, false},
		{"conflict", &pgconn.PgError{Code: conflictCode, Message: "changed"}, false, false},
		{"syntax", &pgconn.PgError{Code: "42601"}, false, false},
		{"canceled", context.Canceled, false, false},
	}
	for _, c := range cases {
		err := wrap(c.err)
		if got := errors.Is(err, store.ErrUnavailable); got != c.unavailable {
			t.Errorf("%s: unavailable %v, want %v (%v)", c.name, got, c.unavailable, err)
		}
		if got := errors.Is(err, store.ErrTimeout); got != c.timeout {
			t.Errorf("%s: timeout %v, want %v (%v)", c.name, got, c.timeout, err)
		}
		if c.name == "conflict" {
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("conflict: %v", err)
			}
			continue
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: the cause is lost: %v", c.name, err)
		}
	}
}

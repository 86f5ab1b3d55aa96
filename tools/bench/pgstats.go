package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

// pgStats is the database's account of the latency phase of --replicas
// on PostgreSQL (--pg-stats): what each statement cost the server per
// turn (pg_stat_statements, nested statements of functions and triggers
// included and marked), and the WAL the turns wrote and flushed
// (pg_stat_wal). It tells the server's execution from the round trips,
// the client's own work and waiting for a core.
type pgStats struct {
	// Turns is how many turns the figures are divided by.
	Turns int `json:"turns"`
	// ExecMsPerTurn is the server's execution time of top-level
	// statements per turn (nested ones are inside it).
	ExecMsPerTurn float64 `json:"exec_ms_per_turn"`
	// Statements are the costliest statements, by total execution time.
	Statements []pgStatement `json:"statements"`
	// WALFlushesPerTurn and WALFlushMsPerTurn are the WAL flushes (fsync)
	// per turn and the time they took; WALBytesPerTurn what was written.
	WALFlushesPerTurn float64 `json:"wal_flushes_per_turn"`
	WALFlushMsPerTurn float64 `json:"wal_flush_ms_per_turn"`
	WALBytesPerTurn   float64 `json:"wal_bytes_per_turn"`
}

// pgStatement is one statement's share of the turns.
type pgStatement struct {
	// Query is the statement's text, shortened.
	Query string `json:"query"`
	// TopLevel is false for a statement run by a function or trigger.
	TopLevel bool `json:"top_level"`
	// CallsPerTurn and MsPerTurn are its executions and their time per
	// turn; MeanMs is one execution's.
	CallsPerTurn float64 `json:"calls_per_turn"`
	MsPerTurn    float64 `json:"ms_per_turn"`
	MeanMs       float64 `json:"mean_ms"`
}

// resetPgStats starts the count (the extension is made on first use).
func resetPgStats(db *pgx.Conn) error {
	ctx := context.Background()
	for _, q := range []string{"CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "SELECT pg_stat_statements_reset()", "SELECT pg_stat_reset_shared('wal')"} {
		if _, err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("--pg-stats: %s: %w", q, err)
		}
	}
	return nil
}

// readPgStats reads what the server counted since resetPgStats, per turn.
func readPgStats(db *pgx.Conn, turns int) (*pgStats, error) {
	ctx := context.Background()
	out := &pgStats{Turns: turns}
	n := float64(turns)
	rows, err := db.Query(ctx, `SELECT query, toplevel, calls, total_exec_time FROM pg_stat_statements
	                             WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC`)
	if err != nil {
		return nil, err
	}
	var st pgStatement
	var calls int64
	var total float64
	_, err = pgx.ForEachRow(rows, []any{&st.Query, &st.TopLevel, &calls, &total}, func() error {
		if st.TopLevel {
			out.ExecMsPerTurn += total / n
		}
		if len(out.Statements) < 16 {
			q := strings.Join(strings.Fields(st.Query), " ")
			if len(q) > 70 {
				q = q[:70] + "…"
			}
			out.Statements = append(out.Statements, pgStatement{Query: q, TopLevel: st.TopLevel, CallsPerTurn: float64(calls) / n,
				MsPerTurn: total / n, MeanMs: total / float64(max(calls, 1))})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var syncs int64
	var syncMs, bytes float64
	if err := db.QueryRow(ctx, "SELECT wal_sync, wal_sync_time, wal_bytes FROM pg_stat_wal").Scan(&syncs, &syncMs, &bytes); err != nil {
		return nil, err
	}
	out.WALFlushesPerTurn, out.WALFlushMsPerTurn, out.WALBytesPerTurn = float64(syncs)/n, syncMs/n, bytes/n
	return out, nil
}

// print writes the breakdown as text.
func (s *pgStats) print() {
	fmt.Printf("database, per turn (pg_stat_statements, %d turns): %.3f ms executing top-level statements; WAL %.0f bytes, %.2f flushes taking %.3f ms\n",
		s.Turns, s.ExecMsPerTurn, s.WALBytesPerTurn, s.WALFlushesPerTurn, s.WALFlushMsPerTurn)
	for _, st := range s.Statements {
		nested := ""
		if !st.TopLevel {
			nested = " (nested)"
		}
		fmt.Printf("  %6.2f calls %7.3f ms (%.3f ms each)%s %s\n", st.CallsPerTurn, st.MsPerTurn, st.MeanMs, nested, st.Query)
	}
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute load ("" where there
// is none): the machine's business while the bench ran.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

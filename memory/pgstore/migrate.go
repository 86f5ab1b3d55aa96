// Package pgstore keeps MegaContext memory in PostgreSQL, for deployments
// where several proxy replicas share one memory. Its schema is relational
// (tenants, contexts, threads, messages, tags, blocks, nodes, vectors,
// telemetry, provenance, jobs: see migrations/), created and upgraded by
// versioned migrations that the binary runs (Migrate, `megacontext
// migrate`).
package pgstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned step of the schema.
type Migration struct {
	// Version orders the migrations: the number the file name starts with.
	Version int
	// Name is the file name.
	Name string
	// SQL is the statements it runs, in one transaction.
	SQL string
}

// Checksum identifies the migration's SQL, so that a shipped migration
// edited afterwards is caught instead of silently diverging.
func (m Migration) Checksum() string {
	s := sha256.Sum256([]byte(m.SQL))
	return hex.EncodeToString(s[:])
}

// Migrations returns the binary's migrations in version order.
func Migrations() []Migration {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var out []Migration
	for _, n := range names {
		base := path.Base(n)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			panic(fmt.Sprintf("pgstore: migration %s does not start with its version", base))
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			panic(err)
		}
		out = append(out, Migration{Version: v, Name: base, SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out
}

// SchemaVersion is the schema version this binary needs: its last migration.
func SchemaVersion() int {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// ErrSchemaNewer means the database was migrated by a newer binary.
var ErrSchemaNewer = errors.New("pgstore: the database schema is newer than this binary")

// ErrSchemaOld means the database lacks migrations this binary needs.
var ErrSchemaOld = errors.New("pgstore: the database schema is older than this binary (run `megacontext migrate`)")

// migrateLock is the advisory lock key that serializes migrations, so that
// replicas started together migrate once.
const migrateLock = 0x6d63_6d69_6772 // "mcmigr"

// Applied is a migration recorded in the database.
type Applied struct {
	Version  int
	Name     string
	Checksum string
}

// Migrate brings the database's schema up to this binary's version, each
// migration in its own transaction, under an advisory lock so that
// concurrent callers (replicas starting together) migrate once. It returns
// the migrations it applied. A database migrated further than this binary
// knows is left alone (ErrSchemaNewer), as is one whose applied migrations
// differ from the binary's (a checksum mismatch).
func Migrate(ctx context.Context, conn *pgx.Conn) ([]Migration, error) {
	return migrate(ctx, conn, Migrations())
}

// migrate is Migrate up to the last of ms, a prefix of Migrations() (the
// tests make databases of earlier versions with it).
func migrate(ctx context.Context, conn *pgx.Conn, ms []Migration) ([]Migration, error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLock)); err != nil {
		return nil, fmt.Errorf("pgstore: migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrateLock))
	_, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: migrate: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := compatible(applied); err != nil && !errors.Is(err, ErrSchemaOld) {
		return nil, err
	}
	var done []Migration
	for _, m := range ms[min(len(applied), len(ms)):] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum())
			return err
		})
		if err != nil {
			return done, fmt.Errorf("pgstore: migration %s: %w", m.Name, err)
		}
		done = append(done, m)
	}
	return done, nil
}

// Status returns the migrations recorded in the database, and an error
// (ErrSchemaOld, ErrSchemaNewer, a checksum mismatch) when this binary
// cannot use the schema as it is.
func Status(ctx context.Context, conn *pgx.Conn) ([]Applied, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("pgstore: schema status: %w", err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: no schema yet", ErrSchemaOld)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	return applied, compatible(applied)
}

func appliedMigrations(ctx context.Context, conn *pgx.Conn) ([]Applied, error) {
	rows, err := conn.Query(ctx, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("pgstore: read schema_migrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Applied])
	if err != nil {
		return nil, fmt.Errorf("pgstore: read schema_migrations: %w", err)
	}
	return out, nil
}

// compatible checks that the applied migrations are a prefix of the
// binary's (ErrSchemaOld when a strict one).
func compatible(applied []Applied) error {
	ms := Migrations()
	for i, a := range applied {
		if i >= len(ms) {
			return fmt.Errorf("%w: database at version %d, binary at %d", ErrSchemaNewer, applied[len(applied)-1].Version, ms[len(ms)-1].Version)
		}
		if a.Version != ms[i].Version || a.Checksum != ms[i].Checksum() {
			return fmt.Errorf("pgstore: applied migration %d (%s) differs from this binary's %s: the schema was changed outside `megacontext migrate`", a.Version, a.Name, ms[i].Name)
		}
	}
	if len(applied) < len(ms) {
		have := 0
		if len(applied) > 0 {
			have = applied[len(applied)-1].Version
		}
		return fmt.Errorf("%w: database at version %d, binary needs %d", ErrSchemaOld, have, ms[len(ms)-1].Version)
	}
	return nil
}

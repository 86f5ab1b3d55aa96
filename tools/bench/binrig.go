package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
)

// binRig is what a bench that runs the real binary needs before its first
// replica: the binary built into a temporary work folder and a fake
// upstream for it. The replica and paired benches share it, so that both
// measure the same build against the same upstream.
type binRig struct {
	// work is the temporary folder: the binary, data directories, logs.
	work string
	// bin is the proxy binary built from the repository root.
	bin string
	// fake is the upstream every replica talks to (n_ctx 8192).
	fake *fakellama.Server
}

// newBinRig builds the binary into a fresh folder named after prefix and
// starts the fake upstream. cleanup stops the upstream and removes the
// folder; the folder is also removed when a signal ends the bench.
func newBinRig(prefix string) (br binRig, cleanup func(), err error) {
	br.work, err = os.MkdirTemp("", prefix)
	if err != nil {
		return br, nil, err
	}
	unregister := atExit(func() { os.RemoveAll(br.work) })
	cleanup = func() {
		if br.fake != nil {
			br.fake.Close()
		}
		unregister()
		os.RemoveAll(br.work)
	}
	br.bin = filepath.Join(br.work, "megacontext")
	build := exec.Command("go", "build", "-o", br.bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		cleanup()
		return br, nil, fmt.Errorf("go build: %w (run from the repository root)", err)
	}
	if br.fake, err = fakellama.Start(fakellama.Options{NCtx: 8192}); err != nil {
		cleanup()
		return br, nil, err
	}
	return br, cleanup, nil
}

// benchPostgres starts a throwaway, durable PostgreSQL cluster with
// settings (pgtest) and opens the store on it, migrated, as the replicas
// will find it. cleanup stops the cluster; a signal that ends the bench
// stops it too.
func benchPostgres(settings map[string]string) (dsn string, pg *pgstore.Store, cleanup func(), err error) {
	srv, err := pgtest.Start(pgtest.Options{Durable: true, Settings: settings})
	if err != nil {
		return "", nil, nil, err
	}
	unregister := atExit(func() { srv.Close() })
	cleanup = func() {
		unregister()
		srv.Close()
	}
	dsn = srv.DSN("postgres")
	if pg, err = pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, AutoMigrate: true}); err != nil {
		cleanup()
		return "", nil, nil, err
	}
	return dsn, pg, cleanup, nil
}

package integration

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
)

// TestMigrateCommand: `megacontext migrate` creates the schema of an empty
// database, a second run applies nothing, and --status reports the
// version; --status on an empty database fails and says what to run.
func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.NewDB(t)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binPath, append([]string{"migrate", "--dsn", dsn}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := run("--status")
	if err == nil || !strings.Contains(out, "megacontext migrate") {
		t.Fatalf("status of an empty database: %v\n%s", err, out)
	}
	out, err = run()
	if err != nil || !strings.Contains(out, "applied 0001") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err = run()
	if err != nil || strings.Contains(out, "applied") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	out, err = run("--status")
	if err != nil || !strings.Contains(out, "applied 0001") || !strings.Contains(out, "as this binary needs") {
		t.Fatalf("status: %v\n%s", err, out)
	}
}

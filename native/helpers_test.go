package native

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// repoRoot returns the folder holding go.mod above the package folder.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test folder")
		}
		dir = parent
	}
}

// sharedDir returns ../shared beside the repository, or skips the test
// when it is absent.
func sharedDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(filepath.Dir(repoRoot(t)), "shared")
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		t.Skipf("skipping: %s (test vocabularies and models) is absent", d)
	}
	return d
}

// sharedFile returns a file under ../shared, skipping when ../shared is
// absent and failing when it exists without the file.
func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(sharedDir(t), rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return p
}

var testLib struct {
	once sync.Once
	lib  *Library
	err  error
}

// openTestLib opens the libraries of the repository's .native folder (or
// $MEGACONTEXT_NATIVE_DIR). When they are missing the test fails under
// CI=true (CI runs `make native` first) and is skipped otherwise.
func openTestLib(t testing.TB) *Library {
	t.Helper()
	testLib.once.Do(func() {
		dir := os.Getenv(EnvDir)
		if dir == "" {
			dir = filepath.Join(repoRoot(t), DefaultDir)
		}
		testLib.lib, testLib.err = Open(dir)
	})
	if testLib.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("native libraries unavailable: %v", testLib.err)
		}
		t.Skipf("skipping: native libraries unavailable: %v", testLib.err)
	}
	return testLib.lib
}

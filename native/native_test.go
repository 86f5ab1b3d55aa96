package native

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func TestLayouts(t *testing.T) {
	if errs := layoutErrors(); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func TestOpenVerifies(t *testing.T) {
	lib := openTestLib(t)
	if lib.Version() != PinnedVersion {
		t.Errorf("Version() = %q", lib.Version())
	}
	if c := lib.Commit(); c != "" && c != PinnedCommit {
		t.Errorf("Commit() = %q", c)
	}
	t.Logf("dir %s, version %s, commit %s", lib.Dir(), lib.Version(), lib.Commit())
	// Opening again is cheap and returns an equivalent library.
	again, err := Open(lib.Dir())
	if err != nil || again.Version() != lib.Version() {
		t.Fatalf("second Open: %v", err)
	}
}

func TestOpenMissingDir(t *testing.T) {
	_, err := Open(t.TempDir())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(empty dir) = %v, want ErrNotFound", err)
	}
	_, err = Open(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(missing dir) = %v, want ErrNotFound", err)
	}
}

func TestOpenGarbageLibrary(t *testing.T) {
	dir := t.TempDir()
	for _, names := range libNames {
		if err := os.WriteFile(filepath.Join(dir, names[0]), []byte("not an ELF file\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrLoad) {
		t.Fatalf("Open(garbage) = %v, want ErrLoad", err)
	}
	t.Log(err)
}

func TestOpenGarbageLlama(t *testing.T) {
	lib := openTestLib(t)
	// Real ggml libraries, and a garbage libllama.so: dlopen itself fails.
	dir := t.TempDir()
	for _, n := range []string{"libggml-base.so", "libggml.v0.5.0.so"} {
		if err := os.Symlink(filepath.Join(lib.Dir(), n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "libllama.so"), make([]byte, 4096), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrLoad) || strings.Contains(err.Error(), "per process") {
		t.Fatalf("Open(garbage libllama) = %v, want a dlopen error", err)
	}
	t.Log(err)
}

func TestOpenIncompleteDir(t *testing.T) {
	lib := openTestLib(t)
	// Only libggml-base and libggml: libllama is missing.
	dir := t.TempDir()
	for _, n := range []string{"libggml-base.so", "libggml.v0.5.0.so"} {
		if err := os.Symlink(filepath.Join(lib.Dir(), n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(incomplete) = %v, want ErrNotFound", err)
	}
}

func TestOpenWrongLibrary(t *testing.T) {
	lib := openTestLib(t)
	// A real shared object that is not libllama: symbols are missing.
	dir := t.TempDir()
	for _, n := range []string{"libggml-base.so", "libggml.v0.5.0.so"} {
		if err := os.Symlink(filepath.Join(lib.Dir(), n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(lib.Dir(), "libggml-base.so"), filepath.Join(dir, "libllama.so")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrABIMismatch) {
		t.Fatalf("Open(wrong libllama) = %v, want ErrABIMismatch", err)
	}
	t.Log(err)
}

func TestFindDirEnv(t *testing.T) {
	lib := openTestLib(t)
	t.Setenv(EnvDir, lib.Dir())
	d, err := FindDir("")
	if err != nil || d != lib.Dir() {
		t.Fatalf("FindDir with $%s = %q, %v", EnvDir, d, err)
	}
}

func TestDefaultsCheck(t *testing.T) {
	good := defaultModelParams()
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&good)), unsafe.Sizeof(good))
	buf := append([]byte(nil), raw...)
	if err := checkModelDefaults(len(buf), buf); err != nil {
		t.Fatalf("pinned defaults rejected: %v", err)
	}
	if err := checkModelDefaults(88, buf); !errors.Is(err, ErrABIMismatch) {
		t.Fatalf("size 88 accepted: %v", err)
	}
	bad := good
	bad.UseExtraBufts = false
	raw = unsafe.Slice((*byte)(unsafe.Pointer(&bad)), unsafe.Sizeof(bad))
	if err := checkModelDefaults(len(raw), raw); !errors.Is(err, ErrABIMismatch) {
		t.Fatalf("changed default accepted: %v", err)
	}
	cp := defaultContextParams()
	craw := unsafe.Slice((*byte)(unsafe.Pointer(&cp)), unsafe.Sizeof(cp))
	if err := checkContextDefaults(len(craw), craw); err != nil {
		t.Fatalf("pinned context defaults rejected: %v", err)
	}
	cp.KVUnified = true
	if err := checkContextDefaults(len(craw), craw); !errors.Is(err, ErrABIMismatch) || !strings.Contains(err.Error(), "KVUnified") {
		t.Fatalf("changed context default accepted: %v", err)
	}
}

func TestOpenSecondCopyRefused(t *testing.T) {
	lib := openTestLib(t)
	// A copy of the loaded build in another folder would be a second
	// library of the same name in the process.
	dir := t.TempDir()
	for _, names := range libNames {
		data, err := os.ReadFile(findFile(lib.Dir(), names))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, names[0]), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), "one library folder per process") {
		t.Fatalf("Open(copy) = %v", err)
	}
}

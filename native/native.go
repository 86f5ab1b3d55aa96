// Package native binds the llama.cpp/ggml shared libraries with purego (no
// cgo) for exact tokenization, embeddings and small local generation.
//
// The bindings are written for one pinned build: the prebuilt libraries of
// the npm package @node-llama-cpp/linux-x64@3.22.1 (llama.cpp 0.5.0-dev,
// commit 0ad4a86), installed into .native/ by `make native`. Open verifies
// the library version and the layout of every struct the bindings pass by
// value before anything else is called, and returns an error wrapping
// ErrABIMismatch instead of corrupting memory when the libraries differ.
// A missing or broken library yields an error wrapping ErrNotFound or
// ErrLoad; nothing in this package panics because of the libraries.
//
// Opened libraries stay loaded for the life of the process (unloading
// llama.cpp is not safe); Open may be called any number of times.
package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// The pinned build the bindings are written for.
const (
	// PinnedPackage is the npm package whose libraries `make native` installs.
	PinnedPackage = "@node-llama-cpp/linux-x64@3.22.1"
	// PinnedVersion is what llama_version() returns for the pinned build.
	PinnedVersion = "0.5.0-dev"
	// PinnedCommit is the llama.cpp commit of the pinned build (LLAMA_COMMIT).
	PinnedCommit = "0ad4a86"
	// EnvDir names the environment variable that points at the libraries.
	EnvDir = "MEGACONTEXT_NATIVE_DIR"
	// DefaultDir is the folder, relative to the working directory, that
	// `make native` fills.
	DefaultDir = ".native"
)

// Errors returned (wrapped) by Open.
var (
	// ErrNotFound means no folder with the libraries was found.
	ErrNotFound = errors.New("native: llama.cpp libraries not found (run `make native`)")
	// ErrLoad means a library file exists but could not be loaded.
	ErrLoad = errors.New("native: cannot load llama.cpp library")
	// ErrABIMismatch means the libraries are not the build the bindings expect.
	ErrABIMismatch = errors.New("native: llama.cpp library does not match the pinned build")
	// ErrClosed is returned by methods of a closed Tokenizer, Embedder, Model or Context.
	ErrClosed = errors.New("native: use of closed handle")
)

// Library is a loaded set of llama.cpp/ggml libraries with the functions
// the bindings use. It is safe for concurrent use.
type Library struct {
	dir     string
	version string
	commit  string

	ggmlBase, ggml, llama uintptr

	backendOnce sync.Once
	backendErr  error

	fn functions
}

// Dir returns the folder the libraries were loaded from.
func (l *Library) Dir() string { return l.dir }

// Version returns llama_version() of the loaded library.
func (l *Library) Version() string { return l.version }

// Commit returns the llama.cpp commit of the loaded build, or "" when the
// optional libllama-common library that records it is absent.
func (l *Library) Commit() string { return l.commit }

// loaded records the libraries this process has loaded, by file name:
// they can never be unloaded, and the dynamic loader is process-wide.
var loaded struct {
	mu    sync.Mutex
	paths map[string]string // file name -> real path
}

// libNames lists, per library, the file names tried in order.
var libNames = [...][]string{
	{"libggml-base.so"},
	{"libggml.v0.5.0.so", "libggml.so"},
	{"libllama.v0.5.0.so", "libllama.so"},
}

// FindDir returns the folder Open would load the libraries from: dir when
// not empty, else $MEGACONTEXT_NATIVE_DIR, else ./.native, else a .native
// folder or the folder of the running executable. It returns an error
// wrapping ErrNotFound when none holds the libraries.
func FindDir(dir string) (string, error) {
	var tried []string
	try := func(d string) (string, bool) {
		if d == "" {
			return "", false
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			abs = d
		}
		if slices.Contains(tried, abs) {
			return "", false
		}
		tried = append(tried, abs)
		if hasLibs(abs) {
			return abs, true
		}
		return "", false
	}
	if dir != "" {
		if d, ok := try(dir); ok {
			return d, nil
		}
		return "", fmt.Errorf("%w: no %s in %s", ErrNotFound, libNames[2][0], tried[0])
	}
	if d, ok := try(os.Getenv(EnvDir)); ok {
		return d, nil
	}
	if d, ok := try(DefaultDir); ok {
		return d, nil
	}
	if exe, err := os.Executable(); err == nil {
		exeDir := filepath.Dir(exe)
		if d, ok := try(filepath.Join(exeDir, DefaultDir)); ok {
			return d, nil
		}
		if d, ok := try(exeDir); ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: looked in %s", ErrNotFound, strings.Join(tried, ", "))
}

func hasLibs(dir string) bool {
	for _, names := range libNames {
		if findFile(dir, names) == "" {
			return false
		}
	}
	return true
}

func findFile(dir string, names []string) string {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// Open loads the libraries from dir (see FindDir for the search when dir
// is empty), registers the functions the bindings use and verifies that
// the build matches the pinned one (version, commit when recorded, struct
// sizes and default values). Errors wrap ErrNotFound, ErrLoad or
// ErrABIMismatch.
func Open(dir string) (*Library, error) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("%w: the pinned build is for linux/amd64, not %s/%s", ErrNotFound, runtime.GOOS, runtime.GOARCH)
	}
	d, err := FindDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Library{dir: d}
	handles := []*uintptr{&l.ggmlBase, &l.ggml, &l.llama}
	loaded.mu.Lock()
	defer loaded.mu.Unlock()
	for i, names := range libNames {
		p := findFile(d, names)
		if p == "" {
			return nil, fmt.Errorf("%w: no %s in %s", ErrNotFound, names[0], d)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrLoad, p, err)
		}
		// A second copy of a library with the same name would mix two
		// builds in one process (the loader resolves dependencies by name).
		if prev, ok := loaded.paths[filepath.Base(real)]; ok && prev != real {
			return nil, fmt.Errorf("%w %s: this process already loaded %s; use one library folder per process",
				ErrLoad, p, prev)
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrLoad, p, err)
		}
		if loaded.paths == nil {
			loaded.paths = map[string]string{}
		}
		loaded.paths[filepath.Base(real)] = real
		*handles[i] = h
	}
	if err := l.register(); err != nil {
		return nil, err
	}
	if err := l.verify(); err != nil {
		return nil, err
	}
	installLogger(l)
	return l, nil
}

// initBackends loads the compute backends (the best CPU variant, and CUDA
// when present) from the library folder. Tokenization does not need them.
func (l *Library) initBackends() error {
	l.backendOnce.Do(func() {
		if l.fn.ggmlBackendDevCount() == 0 {
			l.fn.ggmlBackendLoadAllFromPath(l.dir)
		}
		if l.fn.ggmlBackendDevCount() == 0 {
			l.backendErr = fmt.Errorf("%w: no compute backend (libggml-cpu-*.so) loaded from %s", ErrLoad, l.dir)
			return
		}
		l.fn.llamaBackendInit()
	})
	return l.backendErr
}

// DefaultThreads is the CPU thread count used when options leave it zero:
// half the logical CPUs (about the physical cores), at least 1. ggml's
// worker threads spin while they wait for each other, so using every CPU
// of a busy machine can slow decoding down by orders of magnitude.
func DefaultThreads() int { return max(1, runtime.NumCPU()/2) }

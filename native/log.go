package native

import (
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// llama.cpp logs through one process-wide callback, so the log state is
// process-wide too: purego callbacks are never freed, and there is one.
var logs = struct {
	once sync.Once
	cb   uintptr

	mu     sync.Mutex
	out    io.Writer // nil: discard
	recent []string  // last error lines, for error messages
	line   strings.Builder
	level  int32
}{}

// maxRecentErrors bounds the error lines kept for error messages.
const maxRecentErrors = 8

// SetLogOutput sends llama.cpp's log (all levels) to w; nil (the default)
// discards it, except that error lines are still kept for error messages.
// Setting $MEGACONTEXT_NATIVE_LOG=1 before Open sends the log to stderr.
func SetLogOutput(w io.Writer) {
	logs.mu.Lock()
	logs.out = w
	logs.mu.Unlock()
}

func installLogger(l *Library) {
	logs.once.Do(func() {
		if os.Getenv("MEGACONTEXT_NATIVE_LOG") == "1" {
			logs.out = os.Stderr
		}
		logs.cb = purego.NewCallback(logCallback)
	})
	l.fn.llamaLogSet(logs.cb, 0)
}

// logCallback is the ggml_log_callback: (enum ggml_log_level, const char *, void *).
func logCallback(level int32, text *byte, _ uintptr) {
	msg := goString(text)
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if logs.out != nil {
		_, _ = io.WriteString(logs.out, msg)
	}
	if level != ggmlLogLevelCont {
		logs.level = level
	}
	if logs.level != ggmlLogLevelError {
		return
	}
	logs.line.WriteString(msg)
	if strings.HasSuffix(msg, "\n") {
		line := strings.TrimSpace(logs.line.String())
		logs.line.Reset()
		if line != "" {
			logs.recent = append(logs.recent, line)
			if len(logs.recent) > maxRecentErrors {
				logs.recent = logs.recent[len(logs.recent)-maxRecentErrors:]
			}
		}
	}
}

// clearRecentErrors forgets the error lines logged so far.
func clearRecentErrors() {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	logs.recent = logs.recent[:0]
}

// recentErrors returns the llama.cpp error lines logged since
// clearRecentErrors, formatted to end an error message ("" when none).
// Lines of concurrent calls may mix; they only add detail to an error that
// is reported anyway.
func recentErrors() string {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.recent) == 0 {
		return ""
	}
	return ": " + strings.Join(logs.recent, "; ")
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cString returns s as a NUL-terminated byte slice.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

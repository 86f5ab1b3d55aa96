package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/jsondepth"
)

// Sentinel errors returned (wrapped) by this package. Test with errors.Is.
var (
	// ErrTimeout means the upstream stayed silent longer than Options.Timeout:
	// no response headers, or no body bytes between two reads of a stream.
	ErrTimeout = errors.New("upstream timed out")
	// ErrUnsupported means the upstream lacks a capability, such as a
	// tokenizer endpoint for CountTokens.
	ErrUnsupported = errors.New("not supported by the upstream")
	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("upstream client closed")
	// ErrEventTooLarge means one SSE event exceeded SSEReader.MaxEventBytes.
	ErrEventTooLarge = errors.New("sse event too large")
)

// StatusClientClosedRequest is the non-standard status (nginx's 499) that
// FromTransportError reports when the caller's own context was cancelled:
// nobody is left to read the answer, but logs and metrics still get a code.
const StatusClientClosedRequest = 499

// Error codes used in the OpenAI error JSON this package produces.
const (
	// CodeContextLengthExceeded is OpenAI's code for a prompt that does not
	// fit the model's context window.
	CodeContextLengthExceeded = "context_length_exceeded"
	// CodeUpstreamTimeout marks a 504 produced by FromTransportError.
	CodeUpstreamTimeout = "upstream_timeout"
	// CodeUpstreamUnavailable marks a 502 for an upstream that cannot be
	// reached (connection refused, DNS failure, no route).
	CodeUpstreamUnavailable = "upstream_unavailable"
	// CodeUpstreamError marks a 502 for any other transport failure
	// (connection reset, malformed response).
	CodeUpstreamError = "upstream_error"
	// CodeRequestCancelled marks a request whose caller went away.
	CodeRequestCancelled = "request_cancelled"
)

// errorEnvelope is the OpenAI error JSON shape.
type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    any     `json:"code"`
}

// ErrorJSON builds an OpenAI-style error body:
//
//	{"error":{"message":...,"type":...,"param":...,"code":...}}
//
// An empty param is written as null; code may be nil (null), a string or an
// integer; any other type is formatted with fmt.Sprint. An empty typ becomes
// "server_error". The result is always valid JSON.
func ErrorJSON(message, typ, param string, code any) []byte {
	if typ == "" {
		typ = "server_error"
	}
	eb := errorBody{Message: message, Type: typ, Code: normalizeCode(code)}
	if param != "" {
		eb.Param = &param
	}
	out, err := json.Marshal(errorEnvelope{Error: eb})
	if err != nil { // unreachable: every field is a plain string, int or nil
		return []byte(`{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}`)
	}
	return out
}

func normalizeCode(code any) any {
	switch v := code.(type) {
	case nil:
		return nil
	case string:
		return v
	case int:
		return v
	case int64:
		return v
	case int32:
		return int64(v)
	case uint:
		return uint64(v)
	case uint32:
		return uint64(v)
	case uint64:
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// typeForStatus gives the OpenAI error type conventionally used with status.
func typeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 400 && status < 500:
		return "invalid_request_error"
	default:
		return "server_error"
	}
}

// contextLengthPhrases are lower-case fragments of context-overflow messages
// seen from llama.cpp, vLLM, OpenAI, Ollama and Anthropic-compatible servers.
var contextLengthPhrases = []string{
	"maximum context length",                // OpenAI, vLLM
	"context length exceeded",               // generic
	"context_length_exceeded",               // OpenAI code echoed in messages
	"exceeds the available context size",    // llama.cpp
	"exceed_context_size",                   // llama.cpp error type
	"longer than the maximum model length",  // vLLM decoder prompt check
	"exceeds the maximum model length",      // vLLM variants
	"input length exceeds the context",      // Ollama
	"exceeds the context length",            // Ollama and others
	"prompt is too long",                    // Anthropic-compatible
	"context window exceeds",                // misc gateways
	"too big compared to kv size",           // old llama.cpp
	"input is too long for requested model", // OpenAI embeddings-style wording
	sharedPoolPhrase,                        // llama.cpp, slots sharing one KV pool
	"is too large to process",               // llama.cpp embeddings, input over the batch size
	"larger than the max context size",      // llama.cpp embeddings, input over n_ctx
}

// sharedPoolPhrase is llama.cpp's HTTP 500 message when the KV pool that
// its slots share cannot hold what concurrent requests put in it.
const sharedPoolPhrase = "context size has been exceeded"

// IsSharedPoolExhausted reports whether an error body is llama.cpp's
// "Context size has been exceeded.": the prompt fit the slot's n_ctx, but
// not the KV pool the slots share with concurrent requests.
func IsSharedPoolExhausted(body []byte) bool {
	msg := string(body)
	if gjson.ValidBytes(body) {
		msg = extractMessage(body)
	}
	return strings.Contains(strings.ToLower(msg), sharedPoolPhrase)
}

// IsContextLengthError reports whether an upstream error response says the
// prompt did not fit the model's context window: llama.cpp's
// exceed_context_size_error, the OpenAI/vLLM code context_length_exceeded, or
// a message such as "maximum context length", "exceeds the available context
// size" or "prompt is too long". Statuses below 400 and 429 (rate limits,
// whose messages also talk about tokens) are never context-length errors.
func IsContextLengthError(status int, body []byte) bool {
	if status < 400 || status == http.StatusTooManyRequests {
		return false
	}
	if len(body) == 0 {
		return false
	}
	if jsondepth.Valid(body) {
		for _, p := range []string{"error.code", "code", "error.type", "type", "error.error.code"} {
			v := gjson.GetBytes(body, p)
			if v.Type == gjson.String {
				s := strings.ToLower(v.String())
				if s == CodeContextLengthExceeded || s == "exceed_context_size_error" {
					return true
				}
			}
		}
		msg := extractMessage(body)
		return containsContextPhrase(msg)
	}
	return containsContextPhrase(string(body))
}

func containsContextPhrase(s string) bool {
	if s == "" {
		return false
	}
	s = strings.ToLower(s)
	for _, p := range contextLengthPhrases {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// extractMessage finds the human-readable message in the error JSON shapes
// of the supported servers. It returns "" when none is present.
func extractMessage(body []byte) string {
	for _, p := range []string{"error.message", "message", "error.msg", "detail.0.msg", "detail.message", "msg"} {
		if v := gjson.GetBytes(body, p); v.Type == gjson.String && v.String() != "" {
			return v.String()
		}
	}
	for _, p := range []string{"error", "detail", "error.error"} {
		v := gjson.GetBytes(body, p)
		switch {
		case v.Type == gjson.String && v.String() != "":
			return v.String()
		case v.IsObject():
			if m := v.Get("message"); m.Type == gjson.String && m.String() != "" {
				return m.String()
			}
		}
	}
	return ""
}

// OpenAIError normalizes any upstream error response into OpenAI error JSON,
// keeping the upstream message. It understands OpenAI/llama.cpp
// ({"error":{...}}), old vLLM ({"object":"error","message":...}), Ollama
// ({"error":"..."}) and FastAPI ({"detail":...}) bodies; anything else
// (HTML, plain text, empty) yields a message naming the status plus a short,
// single-line snippet of the body. Context-overflow errors get the code
// context_length_exceeded and type invalid_request_error, so that OpenAI SDKs
// recognize them. The result is always valid JSON.
func OpenAIError(status int, body []byte) []byte {
	isCtx := IsContextLengthError(status, body)
	if len(body) > 0 && jsondepth.Valid(body) {
		if msg := extractMessage(body); msg != "" {
			typ := firstString(body, "error.type", "type")
			if typ == "" || (len(typ) > 0 && typ[0] >= 'A' && typ[0] <= 'Z') {
				// vLLM reports Python exception names (BadRequestError);
				// OpenAI clients expect the snake_case families.
				typ = typeForStatus(status)
			}
			param := firstString(body, "error.param", "param")
			var code any
			if v := firstValue(body, "error.code", "code"); v.Exists() {
				switch v.Type {
				case gjson.String:
					code = v.String()
				case gjson.Number:
					if f := v.Float(); f == float64(int64(f)) {
						code = v.Int()
					}
				}
			}
			if isCtx {
				typ = "invalid_request_error"
				if _, ok := code.(string); !ok {
					code = CodeContextLengthExceeded
				}
			}
			return ErrorJSON(msg, typ, param, code)
		}
	}
	msg := "upstream returned HTTP " + strconv.Itoa(status)
	if t := http.StatusText(status); t != "" {
		msg += " " + t
	}
	if s := snippet(body, 200); s != "" {
		msg += ": " + s
	}
	typ := typeForStatus(status)
	var code any
	if isCtx {
		typ, code = "invalid_request_error", CodeContextLengthExceeded
	}
	return ErrorJSON(msg, typ, "", code)
}

func firstValue(body []byte, paths ...string) gjson.Result {
	for _, p := range paths {
		if v := gjson.GetBytes(body, p); v.Exists() && v.Type != gjson.Null {
			return v
		}
	}
	return gjson.Result{}
}

func firstString(body []byte, paths ...string) string {
	for _, p := range paths {
		if v := gjson.GetBytes(body, p); v.Type == gjson.String && v.String() != "" {
			return v.String()
		}
	}
	return ""
}

// snippet renders the start of an arbitrary body as one readable line: HTML
// tags are dropped (a <title> is preferred when present), whitespace is
// collapsed, invalid UTF-8 is skipped, and the result is cut to max runes.
func snippet(body []byte, max int) string {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	s := string(body)
	lower := strings.ToLower(s)
	if i := strings.Index(lower, "<title>"); i >= 0 {
		if j := strings.Index(lower[i:], "</title>"); j > len("<title>") {
			if t := strings.TrimSpace(s[i+len("<title>") : i+j]); t != "" {
				s = t
			}
		}
	}
	var b strings.Builder
	inTag, space := false, false
	n := 0
	for i := 0; i < len(s) && n < max; {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			continue
		case r == '<':
			inTag = true
			continue
		case r == '>' && inTag:
			inTag = false
			space = b.Len() > 0
			continue
		case inTag:
			continue
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r < 0x20 || r == 0x7f:
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	out := b.String()
	if n >= max {
		out += "…"
	}
	return out
}

// FromTransportError maps an error from Do (or from reading a Response body)
// to a status and OpenAI error JSON for the proxy's client: timeouts
// (ErrTimeout, context deadlines, network timeouts) give 504 upstream_timeout;
// an unreachable upstream (connection refused, DNS failure, no route) gives
// 502 upstream_unavailable; a cancelled caller gives 499 request_cancelled;
// anything else gives 502 upstream_error. A nil error gives 200 and nil.
func FromTransportError(err error) (status int, body []byte) {
	if err == nil {
		return http.StatusOK, nil
	}
	switch {
	case isTimeout(err):
		return http.StatusGatewayTimeout, ErrorJSON("the upstream model server did not answer in time: "+err.Error(),
			"server_error", "", CodeUpstreamTimeout)
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest, ErrorJSON("the request was cancelled: "+err.Error(),
			"server_error", "", CodeRequestCancelled)
	case isUnreachable(err):
		return http.StatusBadGateway, ErrorJSON("the upstream model server is unavailable: "+err.Error(),
			"server_error", "", CodeUpstreamUnavailable)
	default:
		return http.StatusBadGateway, ErrorJSON("error talking to the upstream model server: "+err.Error(),
			"server_error", "", CodeUpstreamError)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func isUnreachable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, fasthttp.ErrNoFreeConns) ||
		errors.Is(err, ErrClosed) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// isStaleConnErr reports errors typical of reusing a keep-alive connection
// that the server had already closed.
func isStaleConnErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

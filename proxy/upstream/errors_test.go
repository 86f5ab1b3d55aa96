package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/tidwall/gjson"
)

// Error bodies as real servers send them.
const (
	llamaCtxErr   = `{"error":{"code":400,"message":"request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":4476,"n_ctx":4096}}`
	llamaOldCtx   = `{"error":{"code":500,"message":"the request exceeds the available context size, try increasing the context size or enable context shift","type":"server_error"}}`
	llamaNotFound = `{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}`
	llamaAuth     = `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}`
	vllmOldCtx    = `{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}`
	vllmNewCtx    = `{"error":{"message":"'max_tokens' or 'max_completion_tokens' is too large: 5000. This model's maximum context length is 4096 tokens and your request has 100 input tokens (5000 > 4096 - 100).","type":"BadRequestError","param":null,"code":400}}`
	vllmDecoder   = `{"object":"error","message":"The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that ` + "`max_model_len`" + ` is no smaller than the number of text tokens.","type":"BadRequestError","param":null,"code":400}`
	vllmBadModel  = `{"object":"error","message":"The model ` + "`gpt-4`" + ` does not exist.","type":"NotFoundError","param":null,"code":404}`
	openaiCtx     = `{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`
	openaiRate    = `{"error":{"message":"Rate limit reached for gpt-4 on tokens per min (TPM): Limit 10000, Used 9000, Requested 2000. Please try again in 6s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`
	ollamaErr     = `{"error":"model 'llama9' not found, try pulling it first"}`
	ollamaCtx     = `{"error":"the input length exceeds the context length"}`
	anthropicCtx  = `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}`
	fastapiDetail = `{"detail":"Not Found"}`
	fastapiList   = `{"detail":[{"loc":["body","messages"],"msg":"field required","type":"value_error.missing"}]}`
	htmlGarbage   = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.25.3</center></body></html>"
)

func TestIsContextLengthError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"llama.cpp exceed_context_size_error", 400, llamaCtxErr, true},
		{"llama.cpp older message", 500, llamaOldCtx, true},
		{"llama.cpp not found", 404, llamaNotFound, false},
		{"llama.cpp auth", 401, llamaAuth, false},
		{"vLLM old shape", 400, vllmOldCtx, true},
		{"vLLM new shape", 400, vllmNewCtx, true},
		{"vLLM decoder prompt", 400, vllmDecoder, true},
		{"vLLM bad model", 404, vllmBadModel, false},
		{"OpenAI code", 400, openaiCtx, true},
		{"OpenAI code only", 400, `{"error":{"message":"x","code":"context_length_exceeded"}}`, true},
		{"OpenAI rate limit", 429, openaiRate, false},
		{"Ollama not found", 404, ollamaErr, false},
		{"Ollama context", 400, ollamaCtx, true},
		{"Anthropic compatible", 400, anthropicCtx, true},
		{"FastAPI detail", 404, fastapiDetail, false},
		{"FastAPI validation", 422, fastapiList, false},
		{"HTML", 502, htmlGarbage, false},
		{"plain text context", 400, "error: prompt is too long", true},
		// llama-server b1-de3ff81, 4 slots sharing one KV pool, concurrent requests.
		{"llama.cpp shared KV pool", 500, `{"error":{"code":500,"message":"Context size has been exceeded.","type":"server_error"}}`, true},
		// llama-server --embeddings: an input over the batch size, or over n_ctx.
		{"llama.cpp embedding over the batch", 500, `{"error":{"code":500,"message":"input (602 tokens) is too large to process. increase the physical batch size (current batch size: 512)","type":"server_error"}}`, true},
		{"llama.cpp embedding over n_ctx", 400, `{"error":{"code":400,"message":"input (300 tokens) is larger than the max context size (128 tokens). skipping","type":"exceed_context_size_error","n_prompt_tokens":300,"n_ctx":128}}`, true},
		{"llama.cpp other 500", 500, `{"error":{"code":500,"message":"the current context does not logits computation. skipping","type":"server_error"}}`, false},
		{"success status", 200, llamaCtxErr, false},
		{"empty", 400, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsContextLengthError(tc.status, []byte(tc.body)); got != tc.want {
				t.Errorf("IsContextLengthError(%d, %q) = %v, want %v", tc.status, tc.body, got, tc.want)
			}
		})
	}
}

type wantErr struct {
	msg     string // substring of message
	typ     string
	param   any // nil or string
	code    any // nil, string or float64 (JSON number)
	msgNot  string
	exactly bool // msg must equal
}

func TestOpenAIError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   wantErr
	}{
		{"llama.cpp context", 400, llamaCtxErr, wantErr{msg: "exceeds the available context size", typ: "invalid_request_error", code: CodeContextLengthExceeded}},
		{"llama.cpp not found", 404, llamaNotFound, wantErr{msg: "File Not Found", typ: "not_found_error", code: float64(404), exactly: true}},
		{"llama.cpp auth", 401, llamaAuth, wantErr{msg: "Invalid API Key", typ: "authentication_error", code: float64(401)}},
		{"vLLM old context", 400, vllmOldCtx, wantErr{msg: "maximum context length is 4096", typ: "invalid_request_error", code: CodeContextLengthExceeded}},
		{"vLLM new context", 400, vllmNewCtx, wantErr{msg: "too large: 5000", typ: "invalid_request_error", code: CodeContextLengthExceeded}},
		{"vLLM bad model", 404, vllmBadModel, wantErr{msg: "does not exist", typ: "not_found_error", code: float64(404)}},
		{"OpenAI context", 400, openaiCtx, wantErr{msg: "maximum context length", typ: "invalid_request_error", param: "messages", code: CodeContextLengthExceeded}},
		{"OpenAI rate", 429, openaiRate, wantErr{msg: "Rate limit reached", typ: "tokens", code: "rate_limit_exceeded"}},
		{"Ollama", 404, ollamaErr, wantErr{msg: "model 'llama9' not found, try pulling it first", typ: "not_found_error", exactly: true}},
		{"Ollama context", 400, ollamaCtx, wantErr{msg: "input length exceeds", typ: "invalid_request_error", code: CodeContextLengthExceeded}},
		{"Anthropic", 400, anthropicCtx, wantErr{msg: "prompt is too long", typ: "invalid_request_error", code: CodeContextLengthExceeded}},
		{"FastAPI detail", 404, fastapiDetail, wantErr{msg: "Not Found", typ: "not_found_error", exactly: true}},
		{"FastAPI validation", 422, fastapiList, wantErr{msg: "field required", typ: "invalid_request_error"}},
		{"HTML", 502, htmlGarbage, wantErr{msg: "upstream returned HTTP 502 Bad Gateway: 502 Bad Gateway", typ: "server_error", msgNot: "<"}},
		{"HTML no title", 503, "<html><body><p>Service\n\n   down</p></body></html>", wantErr{msg: "HTTP 503 Service Unavailable: Service down", typ: "server_error"}},
		{"plain text", 500, "internal failure\n", wantErr{msg: "upstream returned HTTP 500 Internal Server Error: internal failure", typ: "server_error", exactly: true}},
		{"empty", 503, "", wantErr{msg: "upstream returned HTTP 503 Service Unavailable", typ: "server_error", exactly: true}},
		{"JSON without message", 500, `{"foo":1}`, wantErr{msg: `HTTP 500 Internal Server Error: {"foo":1}`, typ: "server_error"}},
		{"binary", 500, "\xff\xfe\x00bad\x01", wantErr{msg: "HTTP 500 Internal Server Error: bad", typ: "server_error"}},
		{"long", 500, strings.Repeat("a", 5000), wantErr{msg: "…", typ: "server_error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := OpenAIError(tc.status, []byte(tc.body))
			var env struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(out, &env); err != nil {
				t.Fatalf("invalid JSON %s: %v", out, err)
			}
			e := env.Error
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e[k]; !ok {
					t.Errorf("missing key %q in %s", k, out)
				}
			}
			msg, _ := e["message"].(string)
			if tc.want.exactly && msg != tc.want.msg {
				t.Errorf("message = %q, want %q", msg, tc.want.msg)
			}
			if !strings.Contains(msg, tc.want.msg) {
				t.Errorf("message %q lacks %q", msg, tc.want.msg)
			}
			if tc.want.msgNot != "" && strings.Contains(msg, tc.want.msgNot) {
				t.Errorf("message %q contains %q", msg, tc.want.msgNot)
			}
			if e["type"] != tc.want.typ {
				t.Errorf("type = %v, want %v", e["type"], tc.want.typ)
			}
			if e["param"] != tc.want.param {
				t.Errorf("param = %v, want %v", e["param"], tc.want.param)
			}
			if e["code"] != tc.want.code {
				t.Errorf("code = %#v, want %#v", e["code"], tc.want.code)
			}
			if len([]rune(msg)) > 300 && !strings.HasPrefix(tc.body, "{") {
				t.Errorf("snippet too long: %d runes", len([]rune(msg)))
			}
		})
	}
}

func TestErrorJSON(t *testing.T) {
	cases := []struct {
		message, typ, param string
		code                any
		want                string
	}{
		{"bad", "invalid_request_error", "messages", "x", `{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"x"}}`},
		{"bad", "", "", nil, `{"error":{"message":"bad","type":"server_error","param":null,"code":null}}`},
		{"q\"<>&", "t", "", 400, `{"error":{"message":"q\"\u003c\u003e\u0026","type":"t","param":null,"code":400}}`},
		{"m", "t", "", struct{ A int }{1}, `{"error":{"message":"m","type":"t","param":null,"code":"{1}"}}`},
	}
	for _, tc := range cases {
		if got := string(ErrorJSON(tc.message, tc.typ, tc.param, tc.code)); got != tc.want {
			t.Errorf("ErrorJSON(%q,%q,%q,%v) = %s, want %s", tc.message, tc.typ, tc.param, tc.code, got, tc.want)
		}
	}
	if out := ErrorJSON("\xff\xfe", "t", "", nil); !json.Valid(out) {
		t.Errorf("invalid UTF-8 message gave invalid JSON %q", out)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestFromTransportError(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &netSyscallErr{syscall.ECONNREFUSED}}
	cases := []struct {
		name   string
		err    error
		status int
		code   any
	}{
		{"nil", nil, 200, nil},
		{"ErrTimeout", fmt.Errorf("upstream POST /x: %w", ErrTimeout), 504, CodeUpstreamTimeout},
		{"deadline", context.DeadlineExceeded, 504, CodeUpstreamTimeout},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, 504, CodeUpstreamTimeout},
		{"refused", fmt.Errorf("wrap: %w", refused), 502, CodeUpstreamUnavailable},
		{"dns", &net.DNSError{Err: "no such host", Name: "nope.invalid"}, 502, CodeUpstreamUnavailable},
		{"closed client", ErrClosed, 502, CodeUpstreamUnavailable},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), StatusClientClosedRequest, CodeRequestCancelled},
		{"reset", syscall.ECONNRESET, 502, CodeUpstreamError},
		{"eof", io.ErrUnexpectedEOF, 502, CodeUpstreamError},
		{"other", errors.New("boom"), 502, CodeUpstreamError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := FromTransportError(tc.err)
			if status != tc.status {
				t.Errorf("status = %d, want %d", status, tc.status)
			}
			if tc.err == nil {
				if body != nil {
					t.Errorf("body = %s, want nil", body)
				}
				return
			}
			if !json.Valid(body) {
				t.Fatalf("invalid JSON %s", body)
			}
			if got := gjson.GetBytes(body, "error.code").String(); got != tc.code {
				t.Errorf("code = %q, want %q", got, tc.code)
			}
			if !strings.Contains(gjson.GetBytes(body, "error.message").String(), tc.err.Error()) {
				t.Errorf("message %s does not include the error", body)
			}
		})
	}
}

// netSyscallErr mimics os.SyscallError wrapping an errno.
type netSyscallErr struct{ errno syscall.Errno }

func (e *netSyscallErr) Error() string { return "connect: " + e.errno.Error() }
func (e *netSyscallErr) Unwrap() error { return e.errno }

func FuzzOpenAIError(f *testing.F) {
	for _, s := range []string{llamaCtxErr, llamaOldCtx, vllmOldCtx, vllmNewCtx, openaiCtx, openaiRate,
		ollamaErr, anthropicCtx, fastapiDetail, fastapiList, htmlGarbage, "", "\xff", `{"error":null}`,
		`{"error":{"code":1e400,"message":"x"}}`, `{"error":{"code":1.5,"message":"x","param":7}}`, `[1,2]`, `"str"`,
		strings.Repeat("[", 200), `{"error":{"message":"x","param":` + strings.Repeat("[", 5000) + `}}`} {
		f.Add(400, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		out := OpenAIError(status, body)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q for %q", out, body)
		}
		e := gjson.GetBytes(out, "error")
		if e.Get("message").Type != gjson.String || e.Get("message").String() == "" {
			t.Fatalf("no message in %s", out)
		}
		if e.Get("type").Type != gjson.String {
			t.Fatalf("no type in %s", out)
		}
		if c := e.Get("code"); c.Type != gjson.Null && c.Type != gjson.String && c.Type != gjson.Number {
			t.Fatalf("bad code in %s", out)
		}
		_ = IsContextLengthError(status, body)
	})
}

func TestIsSharedPoolExhausted(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"error":{"code":500,"message":"Context size has been exceeded.","type":"server_error"}}`, true},
		{`Context size has been exceeded.`, true},
		{llamaCtxErr, false},
		{`{"error":{"code":500,"message":"tokenizer exploded","type":"server_error"}}`, false},
		{``, false},
	} {
		if got := IsSharedPoolExhausted([]byte(tc.body)); got != tc.want {
			t.Errorf("IsSharedPoolExhausted(%q) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultTimeout     = 10 * time.Minute
	DefaultDialTimeout = 10 * time.Second
	DefaultMaxConns    = 64
	// DefaultTokenizeConcurrency bounds the parallel tokenize requests of one
	// CountTokens call.
	DefaultTokenizeConcurrency = 8
)

// maxHelperBody caps the bodies read by Discover, CountTokens and Ready.
const maxHelperBody = 16 << 20

// idleConnTimeout is shorter than the 5 s keep-alive of llama.cpp's
// cpp-httplib and of uvicorn (vLLM), so pooled connections are dropped by us
// before the server drops them.
const idleConnTimeout = 4 * time.Second

// Options configure a Client.
type Options struct {
	// BaseURL is the upstream root, without /v1: "http://127.0.0.1:8080".
	// A path prefix ("https://host/llm") is kept in front of every path.
	BaseURL string
	// APIKey, when set, is sent as "Authorization: Bearer <APIKey>" on every
	// request, replacing any Authorization header given to Do.
	APIKey string
	// Timeout is the longest the upstream may stay silent: until the
	// response headers arrive, and between two reads of a response body that
	// each wait for data. It is not a limit on a whole streamed generation;
	// use the context for that. Zero means DefaultTimeout; negative disables.
	Timeout time.Duration
	// DialTimeout bounds establishing a TCP connection. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConns bounds the connections (and so the concurrent requests) to
	// the upstream; further requests wait for a free one or for their
	// context. Zero means DefaultMaxConns.
	MaxConns int
	// TokenizeConcurrency bounds the parallel tokenize requests of one
	// CountTokens call. Zero means DefaultTokenizeConcurrency.
	TokenizeConcurrency int
	// TLSConfig is used for https upstreams; nil means the system defaults.
	TLSConfig *tls.Config
	// Logger receives debug and warning records; nil discards them.
	Logger *slog.Logger
}

// Client talks to one upstream server. It is safe for concurrent use.
//
// Requests run on fasthttp. fasthttp has no context support, so every
// connection slot is a "lane": a fasthttp.HostClient limited to one
// connection whose Dial records that connection. A request owns its lane
// exclusively, so cancelling the request's context (or hitting Timeout)
// closes exactly that request's connection, which aborts a blocked dial,
// write, header read or body read promptly and tells the upstream the client
// went away. Finished requests leave their connection idle in the lane for
// keep-alive reuse.
type Client struct {
	opts     Options
	log      *slog.Logger
	base     string // scheme://host[:port][/prefix], no trailing slash
	addr     string // host:port
	isTLS    bool
	tlsConf  *tls.Config
	dialer   net.Dialer
	sem      chan struct{}
	mu       sync.Mutex
	idle     []*lane // LIFO, so warm connections are reused first
	all      []*lane
	closed   atomic.Bool
	info     atomic.Pointer[Info]
	discover sync.Mutex // serializes Discover calls
}

// New validates o and returns a Client. It does not contact the upstream.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		return nil, errors.New("upstream: BaseURL is empty")
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("upstream: parse BaseURL %q: %w", o.BaseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("upstream: BaseURL %q: scheme must be http or https", o.BaseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("upstream: BaseURL %q has no host", o.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream: BaseURL %q must not have a query or fragment", o.BaseURL)
	}
	prefix := strings.TrimRight(u.EscapedPath(), "/")
	if strings.HasSuffix(prefix, "/v1") {
		return nil, fmt.Errorf("upstream: BaseURL %q must be the server root, without /v1", o.BaseURL)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.TokenizeConcurrency <= 0 {
		o.TokenizeConcurrency = DefaultTokenizeConcurrency
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts:  o,
		log:   logger.With("component", "upstream"),
		base:  u.Scheme + "://" + u.Host + prefix,
		isTLS: u.Scheme == "https",
		sem:   make(chan struct{}, o.MaxConns),
	}
	c.addr = fasthttp.AddMissingPort(u.Host, c.isTLS)
	c.dialer = net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	if c.isTLS {
		if o.TLSConfig != nil {
			c.tlsConf = o.TLSConfig.Clone()
		} else {
			c.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if c.tlsConf.ServerName == "" {
			c.tlsConf.ServerName = u.Hostname()
		}
	}
	return c, nil
}

// BaseURL returns the normalized upstream root the Client sends requests to.
func (c *Client) BaseURL() string { return c.base }

// Close closes idle connections and makes later requests fail with
// ErrClosed. Requests in flight finish normally.
func (c *Client) Close() error {
	c.closed.Store(true)
	c.mu.Lock()
	lanes := append([]*lane(nil), c.all...)
	c.mu.Unlock()
	for _, l := range lanes {
		l.hc.CloseIdleConnections()
	}
	return nil
}

// Response is an upstream response being relayed. Body streams from the
// network; the caller must Close it (which releases the connection) even
// when it does not read it.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the response headers in canonical form, without
	// hop-by-hop headers and without Content-Length (see ContentLength).
	Header http.Header
	// ContentLength is the declared body length, or -1 when unknown
	// (chunked or read-until-close bodies, as for event streams).
	ContentLength int64
	// Body is the response body. Reads return the bytes as the upstream
	// sends them (an event stream is never buffered whole). After the
	// request's context ends, reads fail with the context's error; after
	// Options.Timeout of silence, with ErrTimeout.
	Body io.ReadCloser
}

// IsEventStream reports whether the response is a server-sent event stream
// (Content-Type text/event-stream).
func (r *Response) IsEventStream() bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/event-stream")
}

// hopHeaders are not forwarded in either direction. Accept-Encoding is
// dropped so the upstream answers uncompressed: the proxy parses what it
// relays.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Host":                true,
	"Content-Length":      true,
	"Accept-Encoding":     true,
}

// Do sends one request to the upstream and returns its response for
// relaying, whatever its status. path is the request path below BaseURL,
// optionally with a query ("/v1/chat/completions"). hdr holds headers to
// forward; hop-by-hop headers, Host, Content-Length and Accept-Encoding are
// dropped, Authorization is replaced when Options.APIKey is set, and a
// non-empty body without Content-Type is sent as application/json. body is
// sent as is and must not be modified until Do returns.
//
// The response body is streamed, never buffered whole. Cancelling ctx aborts
// the request at any stage (waiting for a connection, dialing, sending,
// waiting for headers, reading the body) by closing its connection, so the
// upstream sees the disconnect and can stop generating. Errors are transport
// errors only (an HTTP error status is a Response); they wrap ErrTimeout,
// the context's error or the network error, and FromTransportError maps them
// to an HTTP answer.
func (c *Client) Do(ctx context.Context, method, path string, hdr http.Header, body []byte) (*Response, error) {
	resp, err := c.do(ctx, method, path, hdr, body)
	if err != nil {
		return nil, fmt.Errorf("upstream %s %s: %w", method, path, err)
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body []byte) (*Response, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	l, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	x := l.begin(ctx)

	req := fasthttp.AcquireRequest()
	req.SetRequestURI(c.base + path)
	req.Header.SetMethod(method)
	hasCT := false
	for k, vs := range hdr {
		ck := http.CanonicalHeaderKey(k)
		if hopHeaders[ck] || (ck == "Authorization" && c.opts.APIKey != "") {
			continue
		}
		hasCT = hasCT || ck == "Content-Type"
		for _, v := range vs {
			req.Header.Add(ck, v)
		}
	}
	if c.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
	}
	if len(body) > 0 {
		if !hasCT {
			req.Header.SetContentType("application/json")
		}
		req.SetBodyRaw(body)
	}

	fresp := fasthttp.AcquireResponse()
	x.armSilence()
	err = l.hc.Do(req, fresp)
	x.disarmSilence()
	fasthttp.ReleaseRequest(req)
	if err != nil {
		err = x.cause(err)
		fasthttp.ReleaseResponse(fresp)
		x.finish()
		return nil, err
	}

	r := &Response{
		Status:        fresp.StatusCode(),
		Header:        make(http.Header, 8),
		ContentLength: int64(fresp.Header.ContentLength()),
	}
	if r.ContentLength < 0 {
		r.ContentLength = -1
	}
	for k, v := range fresp.Header.All() {
		ck := http.CanonicalHeaderKey(string(k))
		if hopHeaders[ck] {
			continue
		}
		r.Header.Add(ck, string(v))
	}

	stream := fresp.BodyStream()
	if stream == nil {
		// No streamed body (HEAD, 204, 304, or fasthttp buffered it).
		data := append([]byte(nil), fresp.Body()...)
		fasthttp.ReleaseResponse(fresp)
		x.finish()
		r.Body = io.NopCloser(bytes.NewReader(data))
		return r, nil
	}
	r.Body = &bodyReader{x: x, resp: fresp, stream: stream}
	return r, nil
}

// acquire takes a lane, waiting for ctx if all MaxConns are busy.
func (c *Client) acquire(ctx context.Context) (*lane, error) {
	select {
	case c.sem <- struct{}{}:
	default:
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a free upstream connection: %w", context.Cause(ctx))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.idle); n > 0 {
		l := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		return l, nil
	}
	l := c.newLane()
	c.all = append(c.all, l)
	return l, nil
}

func (c *Client) release(l *lane) {
	c.mu.Lock()
	c.idle = append(c.idle, l)
	c.mu.Unlock()
	<-c.sem
}

// lane is one connection slot: a HostClient with at most one connection.
type lane struct {
	c  *Client
	hc *fasthttp.HostClient

	mu      sync.Mutex
	conn    net.Conn        // the lane's current raw connection, if any
	ctx     context.Context // the owning request's context, nil when idle
	dials   int             // connections dialed so far
	dials0  int             // dials when the current request started
	retries int             // stale-connection retries of the current request
}

func (c *Client) newLane() *lane {
	l := &lane{c: c}
	l.hc = &fasthttp.HostClient{
		Addr:                      c.addr,
		Name:                      "megacontext",
		IsTLS:                     c.isTLS,
		TLSConfig:                 c.tlsConf,
		Dial:                      l.dial,
		MaxConns:                  1,
		MaxIdleConnDuration:       idleConnTimeout,
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                l.retryIfErr,
		ReadBufferSize:            16 << 10,
		StreamResponseBody:        true,
		DisablePathNormalizing:    true,
	}
	return l
}

// dial opens the lane's connection under the owning request's context and
// records it so that an abort can close it.
func (l *lane) dial(addr string) (net.Conn, error) {
	l.mu.Lock()
	ctx := l.ctx
	l.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	conn, err := l.c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ctx.Err() != nil {
		_ = conn.Close()
		return nil, context.Cause(ctx)
	}
	l.conn = conn
	l.dials++
	return conn, nil
}

// retryIfErr retries a request once when it failed on a reused keep-alive
// connection that the server had closed, before anything was received. A
// fresh connection's failure and an aborted request are never retried.
func (l *lane) retryIfErr(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil || l.ctx.Err() != nil || l.retries > 0 {
		return false, false
	}
	if l.dials != l.dials0 || !isStaleConnErr(err) {
		return false, false
	}
	l.retries++
	l.dials0 = l.dials
	l.c.log.Debug("retrying on a fresh connection", "error", err, "attempt", attempts)
	return false, true
}

func (l *lane) closeConn() {
	l.mu.Lock()
	if l.conn != nil {
		_ = l.conn.Close()
	}
	l.mu.Unlock()
}

// exchange is one request's hold on a lane.
type exchange struct {
	l         *lane
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stopAbort func() bool
	aborted   chan struct{}
	silence   *time.Timer // nil when Options.Timeout < 0
	done      atomic.Bool
}

// begin takes ownership of the lane for one request.
func (l *lane) begin(parent context.Context) *exchange {
	ctx, cancel := context.WithCancelCause(parent)
	x := &exchange{l: l, ctx: ctx, cancel: cancel, aborted: make(chan struct{})}
	l.mu.Lock()
	l.ctx = ctx
	l.dials0 = l.dials
	l.retries = 0
	l.mu.Unlock()
	x.stopAbort = context.AfterFunc(ctx, func() {
		l.closeConn()
		close(x.aborted)
	})
	if t := l.c.opts.Timeout; t > 0 {
		x.silence = time.AfterFunc(t, func() { cancel(ErrTimeout) })
		x.silence.Stop()
	}
	return x
}

func (x *exchange) armSilence() {
	if x.silence != nil {
		x.silence.Reset(x.l.c.opts.Timeout)
	}
}

func (x *exchange) disarmSilence() {
	if x.silence != nil {
		x.silence.Stop()
	}
}

// cause replaces the network error caused by an abort with the abort's
// reason (ErrTimeout or the caller's context error).
func (x *exchange) cause(err error) error {
	if x.ctx.Err() == nil {
		return err
	}
	c := context.Cause(x.ctx)
	if errors.Is(err, c) {
		return err
	}
	return c
}

// finish ends the request's hold on the lane and returns it to the pool.
func (x *exchange) finish() {
	if !x.done.CompareAndSwap(false, true) {
		return
	}
	x.disarmSilence()
	if !x.stopAbort() {
		<-x.aborted // the abort ran or is running; wait for the close
	}
	aborted := x.ctx.Err() != nil
	x.cancel(nil)
	l := x.l
	l.mu.Lock()
	l.ctx = nil
	l.mu.Unlock()
	if aborted {
		// The abort may have closed a connection that is now idle in the
		// lane's pool; drop it rather than hand a dead one to the next user.
		l.hc.CloseIdleConnections()
	}
	l.c.release(l)
}

// bodyReader streams a response body and releases the lane when closed.
type bodyReader struct {
	x       *exchange
	resp    *fasthttp.Response
	stream  io.Reader
	closing sync.Once
	closed  atomic.Bool
}

// Read reads from the upstream body. While it waits for data the silence
// timer runs; an abort turns the resulting network error into its cause.
func (b *bodyReader) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errors.New("upstream: read on closed response body")
	}
	b.x.armSilence()
	n, err := b.stream.Read(p)
	b.x.disarmSilence()
	if err == io.EOF {
		return n, io.EOF
	}
	if err != nil {
		if b.closed.Load() {
			return n, errors.New("upstream: read on closed response body")
		}
		return n, fmt.Errorf("upstream: read response body: %w", b.x.cause(err))
	}
	return n, nil
}

// Close releases the response. An unfinished body closes the connection
// (the upstream sees a disconnect); a fully read one is kept for reuse.
// Close may be called concurrently with Read, which then fails.
func (b *bodyReader) Close() error {
	b.closing.Do(func() {
		b.closed.Store(true)
		// fasthttp's stream knows whether the body was read to the end:
		// if not, it closes the connection (interrupting a concurrent Read);
		// if so, the connection goes back to the lane for reuse.
		if rc, ok := b.stream.(fasthttp.ReadCloserWithError); ok {
			_ = rc.CloseWithError(nil)
		} else {
			_ = b.resp.CloseBodyStream()
		}
		fasthttp.ReleaseResponse(b.resp)
		b.x.finish()
	})
	return nil
}

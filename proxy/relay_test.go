package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// pipeBody is an upstream body the test feeds through a pipe; closing it
// fails a pending read, as closing an upstream.Response body does.
type pipeBody struct {
	*io.PipeReader
	closed chan struct{}
}

func (p *pipeBody) Close() error {
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return p.PipeReader.CloseWithError(errors.New("closed"))
}

// drainUpstream reads an upstream's body to its end after [DONE], so that
// its connection is kept, but never waits on an upstream that sends more
// than afterDoneBytes or goes silent: it closes that one.
func TestDrainUpstream(t *testing.T) {
	for _, c := range []struct {
		name   string
		send   string // what the upstream sends after [DONE]
		end    bool   // the upstream ends its body after send
		closed bool   // drainUpstream must close the body
	}{
		{name: "ended", send: "", end: true},
		{name: "trailing comment then end", send: ": bye\n\n", end: true},
		{name: "silent", send: "", end: false, closed: true},
		{name: "too much", send: strings.Repeat("x", afterDoneBytes+1), end: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			body := &pipeBody{PipeReader: pr, closed: make(chan struct{})}
			go func() {
				_, _ = io.WriteString(pw, c.send)
				if c.end {
					pw.Close()
				}
			}()
			start := time.Now()
			drainUpstream(body)
			waited := time.Since(start)
			select {
			case <-body.closed:
				if !c.closed {
					t.Errorf("the body was closed after %v", waited)
				}
			default:
				if c.closed {
					t.Errorf("drainUpstream returned after %v without closing a silent body", waited)
				}
			}
			pw.CloseWithError(errors.New("test over"))
		})
	}
}

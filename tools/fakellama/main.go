// Command fakellama runs the integration TEST FIXTURE
// github.com/megacontext/megacontext/integration/fakellama as a real
// process: a deterministic, llama.cpp-like fake LLM server for manual and
// scripted end-to-end checks of the MegaContext proxy. It is not a model.
//
// Usage:
//
//	fakellama [--listen 127.0.0.1:8080] [--n-ctx 4096] [--no-tokenize]
//	          [--style llamacpp|vllm|openai] [--model fake-model]
//	          [--chunk-delay 0s]
//
// It prints "fakellama listening on http://ADDR" once it accepts
// connections and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/megacontext/megacontext/integration/fakellama"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "fakellama:", err)
		os.Exit(2)
	}
}

// run parses args, starts the fixture, reports its URL on out (and on ready,
// when not nil) and serves until ctx is done.
func run(ctx context.Context, args []string, out io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("fakellama", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	nCtx := fs.Int("n-ctx", 4096, "context size in tokens")
	noTokenize := fs.Bool("no-tokenize", false, "hide /tokenize, /detokenize, /apply-template and /props (404)")
	style := fs.String("style", fakellama.StyleLlamaCpp, "server to imitate: llamacpp, vllm or openai")
	model := fs.String("model", "fake-model", "model id to report")
	chunkDelay := fs.Duration("chunk-delay", 0, "delay before each streamed chunk")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	srv, err := fakellama.Start(fakellama.Options{
		Addr: *listen, NCtx: *nCtx, NoTokenize: *noTokenize, Style: *style,
		Model: *model, ChunkDelay: *chunkDelay,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fakellama listening on %s (style %s, n_ctx %d)\n", srv.URL(), *style, *nCtx)
	if ready != nil {
		ready <- srv.URL()
	}
	<-ctx.Done()
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return nil
}

// Command megacontext is an OpenAI-compatible sidecar proxy that gives any
// LLM server lifelong memory: it keeps every conversation in a hierarchical
// gist tree and rewrites each request into a working window that fits the
// model's context.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/configs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "megacontext:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "megacontext",
		Short:         "OpenAI-compatible memory proxy: lifelong, budgeted context for any LLM server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newVersionCmd())
	for _, extra := range extraCommands {
		root.AddCommand(extra())
	}
	return root
}

// extraCommands lets other files of this package register subcommands.
var extraCommands []func() *cobra.Command

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "megacontext %s\n", version)
			return err
		},
	}
}

// serveFlagKeys maps serve's flags to configuration keys.
var serveFlagKeys = map[string]string{
	"listen":    "listen",
	"upstream":  "upstream.url",
	"data":      "data_dir",
	"n-ctx":     "upstream.n_ctx",
	"log-level": "log_level",
	"vocab":     "tokenizer.vocab",
	"model":     "native.model",
	"store":     "store.kind",
	"dsn":       "store.dsn",
}

func newServeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(configPath, cmd.Flags(), serveFlagKeys)
			if err != nil {
				return err
			}
			logger := newLogger(cfg.LogLevel)
			return serve(cmd.Context(), cfg, logger)
		},
	}
	d := configs.Defaults()
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (default ./megacontext.yaml when present)")
	f.String("listen", d.Listen, "address to listen on")
	f.String("upstream", d.Upstream.URL, "upstream OpenAI-compatible server root (a /v1 suffix is accepted), or \"local\" with --model")
	f.String("data", d.DataDir, "data directory of the embedded store")
	f.String("store", d.Store.Kind, "where memory is kept: buntdb (embedded, one process) or postgres (shared by replicas, at --dsn)")
	f.String("dsn", "", "PostgreSQL connection string of --store postgres (or MEGACONTEXT_STORE_DSN)")
	f.Int("n-ctx", 0, "upstream context size in tokens (0 discovers it)")
	f.String("log-level", d.LogLevel, "debug, info, warn or error")
	f.String("vocab", "", "GGUF file whose vocabulary counts tokens exactly")
	f.String("model", "", "GGUF model served in-process with --upstream local")
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

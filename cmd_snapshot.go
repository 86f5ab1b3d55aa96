package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/configs"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/bundle"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/auth"
	"github.com/megacontext/megacontext/proxy/upstream"
)

func init() {
	extraCommands = append(extraCommands, newExportCmd, newImportCmd, newVerifyCmd, newKeygenCmd)
}

// offlineFlagKeys maps the offline commands' flags to configuration keys.
var offlineFlagKeys = map[string]string{
	"data":     "data_dir",
	"vocab":    "tokenizer.vocab",
	"upstream": "upstream.url",
}

// offline is the memory engine of a data folder, opened by a command
// while no server runs on it (the folder's lock says so otherwise).
type offline struct {
	eng *memory.Engine
	cfg configs.Config
	// tenant and context name the MegaContext the command works on.
	tenant, context string
}

// addOfflineFlags adds the flags every offline command shares.
func addOfflineFlags(cmd *cobra.Command, configPath, tenant, contextID *string) {
	d := configs.Defaults()
	f := cmd.Flags()
	f.StringVar(configPath, "config", "", "YAML config file (default ./megacontext.yaml when present), as serve reads it")
	f.String("data", d.DataDir, "data directory of the embedded store (stop the server using it first)")
	f.String("vocab", "", "GGUF file whose vocabulary counts tokens exactly (as serve's --vocab)")
	f.String("upstream", d.Upstream.URL, "upstream server whose tokenizer counts tokens, as serve's --upstream (tried for 3 s; the estimate counts without it)")
	f.StringVar(tenant, "tenant", auth.DefaultTenant, "tenant that owns the MegaContext")
	f.StringVar(contextID, "context", "", "MegaContext id")
}

// openOffline opens the engine as serve would (same block size, fan-out,
// tokenizer and policy), without the background embedder.
func openOffline(cmd *cobra.Command, configPath, tenant, contextID string) (*offline, error) {
	if contextID == "" {
		return nil, errors.New("--context is required")
	}
	cfg, err := configs.Load(configPath, cmd.Flags(), offlineFlagKeys)
	if err != nil {
		return nil, err
	}
	logger := newLogger(cfg.LogLevel)
	up, err := upstream.New(upstream.Options{BaseURL: cfg.Upstream.URL, APIKey: cfg.Upstream.APIKey, Timeout: cfg.Upstream.Timeout, DialTimeout: 2 * time.Second, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if cfg.Upstream.Tokenize != "estimate" && cfg.Tokenizer.Vocab == "" {
		// The upstream's tokenizer, when it answers, counts as serve's does.
		dctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
		_, _ = up.Discover(dctx)
		cancel()
	}
	counter, err := newCounter(cfg, up, logger)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Compile(cfg.Policy.Rules)
	if err != nil {
		return nil, fmt.Errorf("policy.rules: %w", err)
	}
	opts, err := engineOptions(cmd.Context(), cfg, counter, pol, logger)
	if err != nil {
		return nil, err
	}
	eng, err := memory.Open(opts)
	if err != nil {
		return nil, err
	}
	return &offline{eng: eng, cfg: cfg, tenant: tenant, context: contextID}, nil
}

func (o *offline) key() memory.Key { return memory.Key{Tenant: o.tenant, Context: o.context} }

// explain names the context and the folder in a not-found error.
func (o *offline) explain(err error) error {
	if errors.Is(err, memory.ErrNotFound) {
		return fmt.Errorf("no MegaContext %q in tenant %q of %s", o.context, o.tenant, o.cfg.DataDir)
	}
	return err
}

func newExportCmd() *cobra.Command {
	var configPath, tenant, contextID, out, sign string
	cmd := &cobra.Command{
		Use:   "export --data DIR --tenant T --context ID -o FILE.mcx",
		Short: "Write a MegaContext as a snapshot bundle (.mcx) and print its root",
		Long: `Write a MegaContext as a portable snapshot bundle: its messages, tree,
tags, times and provenance under one root hash, which is printed (the
X-MegaContext-Root of GET /megacontext/v1/contexts/{id}/export). With
provenance.signing_key configured, or --sign, the root is signed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("-o FILE.mcx is required (- writes to stdout)")
			}
			o, err := openOffline(cmd, configPath, tenant, contextID)
			if err != nil {
				return err
			}
			defer o.eng.Close()
			keyPath := o.cfg.Provenance.SigningKey
			if sign != "" {
				keyPath = sign
			}
			var key ed25519.PrivateKey
			if keyPath != "" {
				if key, err = bundle.LoadPrivateKey(keyPath); err != nil {
					return err
				}
			}
			opts := memory.ExportOptions{SigningKey: key, Operator: true, Caller: "cli"}
			report := cmd.OutOrStdout()
			var root bundle.Root
			if out == "-" {
				report = cmd.ErrOrStderr()
				root, err = o.eng.ExportBundle(o.key(), cmd.OutOrStdout(), opts)
			} else {
				root, err = exportFile(o.eng, o.key(), out, opts)
			}
			if err != nil {
				return o.explain(err)
			}
			fmt.Fprintf(report, "root %s\n", root)
			if s := root.SignerString(); s != "" {
				fmt.Fprintf(report, "signed by %s\n", s)
			}
			fmt.Fprintf(report, "%d bytes%s\n", root.Bytes, sectionCounts(root))
			return nil
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().StringVarP(&out, "out", "o", "", "bundle file to write (- for stdout)")
	cmd.Flags().StringVar(&sign, "sign", "", "ed25519 private key (PEM) to sign with, instead of provenance.signing_key")
	return cmd
}

// exportFile writes the bundle next to path and renames it into place, so
// that a failed export leaves no partial bundle.
func exportFile(eng *memory.Engine, k memory.Key, path string, opts memory.ExportOptions) (bundle.Root, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return bundle.Root{}, err
	}
	defer os.Remove(f.Name())
	root, err := eng.ExportBundle(k, f, opts)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	return root, err
}

func sectionCounts(root bundle.Root) string {
	s := ""
	for _, sec := range root.Sections {
		if sec.Type != bundle.TypeHeader {
			s += fmt.Sprintf(", %d %s", sec.Records, sec.Type)
		}
	}
	return s
}

// trustedKeys loads --pub keys, or else provenance.trusted_keys.
func trustedKeys(pubs []string, cfg configs.Config) ([]ed25519.PublicKey, error) {
	if len(pubs) == 0 {
		_, trusted, err := cfg.Provenance.Keys()
		return trusted, err
	}
	var out []ed25519.PublicKey
	for _, p := range pubs {
		k, err := bundle.LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func newImportCmd() *cobra.Command {
	var configPath, tenant, contextID, in string
	var pubs []string
	cmd := &cobra.Command{
		Use:   "import --data DIR --tenant T --context ID -i FILE.mcx",
		Short: "Verify a snapshot bundle and store it as a new MegaContext",
		Long: `Verify every hash of a snapshot bundle (and its signature: with --pub or
provenance.trusted_keys, one of those keys must have signed it), then store
it as the new MegaContext --context. A damaged, truncated or tampered
bundle is refused before anything is stored. Data the importing engine
derives differently (another block size, fan-out, tokenizer or policy) is
rebuilt from the messages.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				in = args[0]
			}
			if in == "" {
				return errors.New("-i FILE.mcx is required (- reads stdin)")
			}
			o, err := openOffline(cmd, configPath, tenant, contextID)
			if err != nil {
				return err
			}
			defer o.eng.Close()
			trusted, err := trustedKeys(pubs, o.cfg)
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			res, err := o.eng.ImportBundle(o.key(), r, memory.ImportOptions{Trusted: trusted, Caller: "cli"})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "root %s\n", res.Root)
			if s := res.Root.SignerString(); s != "" {
				fmt.Fprintf(w, "signed by %s\n", s)
			}
			fmt.Fprintf(w, "imported %d messages, %d blocks into %s/%s\n", res.Messages, res.Blocks, o.tenant, o.context)
			if res.Rebuilt {
				fmt.Fprintf(w, "derived data rebuilt: %s\n", res.Why)
			}
			return nil
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().StringVarP(&in, "in", "i", "", "bundle file to read (- for stdin)")
	cmd.Flags().StringArrayVar(&pubs, "pub", nil, "require a signature by this ed25519 public key (PEM file or base64); repeatable")
	return cmd
}

func newVerifyCmd() *cobra.Command {
	var pubs []string
	cmd := &cobra.Command{
		Use:   "verify FILE.mcx [--pub KEY]",
		Short: "Check every hash and the signature of a snapshot bundle",
		Long: `Check every hash of a snapshot bundle (FILE, or - for standard input)
against its manifest and root, and its signature when it has one; with --pub,
require a signature by that key. Prints the root and exits non-zero on any
failure. Needs no data folder.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var trusted []ed25519.PublicKey
			for _, p := range pubs {
				k, err := bundle.LoadPublicKey(p)
				if err != nil {
					return err
				}
				trusted = append(trusted, k)
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			root, err := bundle.Verify(r, bundle.ReadOptions{Trusted: trusted})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "root %s\n", root)
			if s := root.SignerString(); s != "" {
				fmt.Fprintf(w, "signed by %s (signature valid)\n", s)
			} else {
				fmt.Fprintln(w, "unsigned")
			}
			fmt.Fprintf(w, "%d bytes%s\n", root.Bytes, sectionCounts(root))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&pubs, "pub", nil, "require a signature by this ed25519 public key (PEM file or base64); repeatable")
	return cmd
}

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen -o FILE",
		Short: "Create an ed25519 key pair for signing snapshots",
		Long: `Write a new ed25519 private key to FILE (PEM, PKCS #8, mode 0600) for
provenance.signing_key, and its public key to FILE.pub (PEM) for
verify --pub and provenance.trusted_keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("-o FILE is required")
			}
			priv, pub, err := bundle.GenerateKey()
			if err != nil {
				return err
			}
			if err := writeNew(out, priv, 0o600); err != nil {
				return err
			}
			if err := writeNew(out+".pub", pub, 0o644); err != nil {
				return err
			}
			k, _ := bundle.ParsePublicKey(pub)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s\npublic key %s\n", out, out+".pub", bundle.Root{Signer: k}.SignerString())
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "private key file to create (the public key goes to FILE.pub)")
	return cmd
}

// writeNew creates path with data; it never overwrites a file.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

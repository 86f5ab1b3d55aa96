package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/native"
)

func init() { extraCommands = append(extraCommands, newTokenizeCmd) }

// newTokenizeCmd returns `megacontext tokenize`: exact llama.cpp token ids
// of standard input with a GGUF vocabulary.
func newTokenizeCmd() *cobra.Command {
	var vocab, nativeDir string
	cmd := &cobra.Command{
		Use:   "tokenize --vocab FILE.gguf [--native-dir DIR]",
		Short: "Print the llama.cpp token ids of standard input (no special tokens added)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if vocab == "" {
				return fmt.Errorf("tokenize: --vocab is required")
			}
			text, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("tokenize: read stdin: %w", err)
			}
			lib, err := native.Open(nativeDir)
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			tok, err := lib.LoadVocab(vocab)
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			defer tok.Close()
			ids, err := tok.Tokenize(string(text))
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			var buf []byte
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ' ')
				}
				buf = strconv.AppendInt(buf, int64(id), 10)
				if len(buf) > 4096 {
					if _, err := w.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
			buf = append(buf, '\n')
			if _, err := w.Write(buf); err != nil {
				return err
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&vocab, "vocab", "", "GGUF file whose vocabulary to use (weights are not loaded)")
	cmd.Flags().StringVar(&nativeDir, "native-dir", "", "folder of the llama.cpp libraries (default: $"+native.EnvDir+", ./"+native.DefaultDir+", or next to the executable)")
	return cmd
}

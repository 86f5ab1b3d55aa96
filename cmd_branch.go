package main

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/memory"
)

func init() {
	extraCommands = append(extraCommands, newForkCmd, newDiffCmd, newMergeCmd, newForgetCmd, newProvenanceCmd)
}

// runOffline opens the engine of the command's data folder, runs op on it
// and prints op's result as JSON.
func runOffline(cmd *cobra.Command, configPath, tenant, contextID string, op func(o *offline) (any, error)) error {
	o, err := openOffline(cmd, configPath, tenant, contextID)
	if err != nil {
		return err
	}
	defer o.eng.Close()
	res, err := op(o)
	if err != nil {
		return o.explain(err)
	}
	return printJSON(cmd, res)
}

// printJSON writes v as indented JSON to the command's output.
func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newForkCmd() *cobra.Command {
	var configPath, tenant, contextID, to string
	var at int64
	cmd := &cobra.Command{
		Use:   "fork --data DIR --context ID --to NEW-ID [--at SEQ]",
		Short: "Branch a MegaContext: a new one holding its messages up to --at",
		Long: `Make the new MegaContext --to a branch of --context holding its messages
0 to --at (default: all), with their tree, vectors and provenance, and a
provenance record of the fork (POST /megacontext/v1/contexts/{id}/fork).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return errors.New("--to NEW-ID is required")
			}
			return runOffline(cmd, configPath, tenant, contextID, func(o *offline) (any, error) {
				return o.eng.Fork(o.key(), to, at, "cli")
			})
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().StringVar(&to, "to", "", "id of the new MegaContext")
	cmd.Flags().Int64Var(&at, "at", -1, "last message (sequence number) the branch takes; -1 takes all")
	return cmd
}

func newDiffCmd() *cobra.Command {
	var configPath, tenant, contextID, with string
	var limit int
	cmd := &cobra.Command{
		Use:   "diff --data DIR --context A --with B",
		Short: "List what each of two MegaContexts holds that the other lacks",
		Long: `Compare --context with --with: their common ancestor (the history both
share from the start) and, on each side, the messages and block spans the
other lacks (GET /megacontext/v1/contexts/{a}/diff?with={b}).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if with == "" {
				return errors.New("--with OTHER-ID is required")
			}
			return runOffline(cmd, configPath, tenant, contextID, func(o *offline) (any, error) {
				return o.eng.Diff(o.key(), with, limit, nil)
			})
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().StringVar(&with, "with", "", "the MegaContext to compare with")
	cmd.Flags().IntVar(&limit, "limit", 100, "messages listed per side at most")
	return cmd
}

func newMergeCmd() *cobra.Command {
	var configPath, tenant, contextID, from string
	cmd := &cobra.Command{
		Use:   "merge --data DIR --context ID --from OTHER",
		Short: "Bring another MegaContext's new messages into this one as a thread",
		Long: `Append to --context the messages of --from that it lacks, as the
thread(s) they form, each recording its origin, and a provenance record of
the merge (POST /megacontext/v1/contexts/{id}/merge).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return errors.New("--from OTHER-ID is required")
			}
			return runOffline(cmd, configPath, tenant, contextID, func(o *offline) (any, error) {
				return o.eng.Merge(o.key(), from, "cli")
			})
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().StringVar(&from, "from", "", "the MegaContext to merge from")
	return cmd
}

func newForgetCmd() *cobra.Command {
	var configPath, tenant, contextID, match, reason string
	var seqs []int64
	cmd := &cobra.Command{
		Use:   "forget --data DIR --context ID (--message SEQ... | --match TEXT) [--reason WHY]",
		Short: "Erase text from a MegaContext for good, the store's file included",
		Long: `Erase whole messages (--message, repeatable) or every occurrence of a
literal (--match, case-sensitive) from --context: from its messages, their
blocks, the gists above them, their embeddings and the served responses
that quote it, then rewrite the store's file so that no earlier version
survives. A provenance record keeps salted hashes of what was erased, the
time, the caller and --reason, never the text
(POST /megacontext/v1/contexts/{id}/forget).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOffline(cmd, configPath, tenant, contextID, func(o *offline) (any, error) {
				return o.eng.Erase(o.key(), memory.EraseRequest{Messages: seqs, Match: match, Reason: reason, Caller: "cli"})
			})
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().Int64SliceVar(&seqs, "message", nil, "sequence number of a message to erase whole (repeatable)")
	cmd.Flags().StringVar(&match, "match", "", "literal text to erase wherever it occurs")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the provenance record")
	return cmd
}

func newProvenanceCmd() *cobra.Command {
	var configPath, tenant, contextID string
	var block int
	cmd := &cobra.Command{
		Use:   "provenance --data DIR --context ID --block N",
		Short: "Trace a block to its message, thread, origin, Merkle path and snapshot",
		Long: `Show where block N of --context came from: its message and thread, its
origin (own, merged from, forked from), the Merkle path above it, the
snapshots that hold it and the provenance records that concern it
(GET /megacontext/v1/contexts/{id}/provenance?block=N).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOffline(cmd, configPath, tenant, contextID, func(o *offline) (any, error) {
				return o.eng.Provenance(o.key(), block, nil)
			})
		},
	}
	addOfflineFlags(cmd, &configPath, &tenant, &contextID)
	cmd.Flags().IntVar(&block, "block", 0, "block number (a window's entries list first_block and last_block)")
	return cmd
}

package main

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/configs"
	"github.com/megacontext/megacontext/memory/pgstore"
)

func init() { extraCommands = append(extraCommands, newMigrateCmd) }

// migrateFlagKeys maps migrate's flags to configuration keys.
var migrateFlagKeys = map[string]string{"dsn": "store.dsn"}

// newMigrateCmd returns `megacontext migrate`: bring the PostgreSQL
// store's schema up to this binary's version, or report it.
func newMigrateCmd() *cobra.Command {
	var configPath string
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate [--config FILE] [--dsn DSN] [--status]",
		Short: "Create or upgrade the PostgreSQL store's schema (store.kind: postgres)",
		Long: "Applies the schema migrations this binary has and the database lacks, each in one\n" +
			"transaction, under an advisory lock (replicas may run it together). --status only\n" +
			"lists what is applied and exits non-zero when the schema does not match this binary.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(configPath, cmd.Flags(), migrateFlagKeys)
			if err != nil {
				return err
			}
			if cfg.Store.DSN == "" {
				return fmt.Errorf("migrate: no database: set store.dsn (or --dsn, MEGACONTEXT_STORE_DSN)")
			}
			ctx := cmd.Context()
			conn, err := pgx.Connect(ctx, cfg.Store.DSN)
			if err != nil {
				return fmt.Errorf("migrate: connect: %w", err)
			}
			defer conn.Close(ctx)
			out := cmd.OutOrStdout()
			if status {
				applied, err := pgstore.Status(ctx, conn)
				for _, a := range applied {
					fmt.Fprintf(out, "applied %04d %s\n", a.Version, a.Name)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "schema at version %d, as this binary needs\n", pgstore.SchemaVersion())
				return nil
			}
			done, err := pgstore.Migrate(ctx, conn)
			for _, m := range done {
				fmt.Fprintf(out, "applied %04d %s\n", m.Version, m.Name)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "schema at version %d\n", pgstore.SchemaVersion())
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML config file (default ./megacontext.yaml when present)")
	cmd.Flags().String("dsn", "", "PostgreSQL connection string (store.dsn)")
	cmd.Flags().BoolVar(&status, "status", false, "report the applied migrations and whether they match this binary")
	return cmd
}

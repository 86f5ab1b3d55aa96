package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/megacontext/megacontext/configs"
)

// serve runs the proxy until ctx ends.
func serve(ctx context.Context, cfg configs.Config, logger *slog.Logger) error {
	_ = ctx
	_ = cfg
	logger.Info("not implemented yet")
	return errors.New("serve: not implemented yet")
}

package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/registry"
)

// DeregisterOptions holds the parsed flags of `sdctl deregister`.
type DeregisterOptions struct {
	ID            string
	IgnoreMissing bool
}

func newDeregisterCmd(f *Factory, runF func(context.Context, *DeregisterOptions) error) *cobra.Command {
	opts := &DeregisterOptions{}
	cmd := &cobra.Command{
		Use:   "deregister ID | NAME HOST:PORT",
		Short: "Remove a service instance",
		Long: `Remove a service instance by its ID, or by the name and address it was registered with
(which gives the default ID NAME-ADDRESS-PORT). A missing instance exits with code 3
unless --ignore-missing is set.`,
		Example: `  sdctl deregister web-10.0.0.5-3000
  sdctl deregister web 10.0.0.5:3000
  sdctl deregister --ignore-missing web-1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := deregisterID(args)
			if err != nil {
				return err
			}
			opts.ID = id
			return dispatch(cmd.Context(), f, opts, runF, runDeregister)
		},
	}
	cmd.Flags().BoolVar(&opts.IgnoreMissing, "ignore-missing", false, "exit 0 when the instance does not exist")
	cmd.ValidArgsFunction = completeInstanceIDs(f)
	return cmd
}

func deregisterID(args []string) (string, error) {
	if len(args) == 1 {
		return args[0], registry.ValidateID(args[0])
	}
	if err := registry.ValidateName(args[0]); err != nil {
		return "", err
	}
	host, port, err := registry.ParseHostPort(args[1])
	if err != nil {
		return "", err
	}
	if host == "" {
		host = outboundAddress()
	}
	return registry.DefaultID(args[0], host, port), nil
}

func runDeregister(ctx context.Context, f *Factory, opts *DeregisterOptions) error {
	err := f.withRegistry(ctx, func(ctx context.Context, reg registry.Registry) error {
		return reg.Deregister(ctx, opts.ID)
	})
	if errors.Is(err, registry.ErrNotFound) && opts.IgnoreMissing {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deregister %s: %w", opts.ID, err)
	}
	return nil
}

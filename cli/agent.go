package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/node"
)

func agentCmd(g *globals) *cobra.Command {
	var cfg node.Config
	var configFile string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a linkops node",
		Long: "Run a linkops node. Every flag can also be set as the environment variable LINKOPS_<FLAG>\n" +
			"(e.g. LINKOPS_DATA_DIR) or as a key of the JSON --config file; flags win over the\n" +
			"environment, which wins over the file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				configFile = os.Getenv("LINKOPS_CONFIG")
			}
			if err := node.LoadEnvAndFile(cmd.Flags(), configFile); err != nil {
				return err
			}
			// Listen before starting, so a signal during start-up still shuts down cleanly.
			sig := make(chan os.Signal, 2)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sig)
			n, err := node.New(cfg, node.Options{Log: g.stderr, Console: g.stdout})
			if err != nil {
				return err
			}
			s := <-sig
			fmt.Fprintf(g.stdout, "received %s, shutting down (send it again to stop at once)\n", s)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- n.Shutdown(ctx) }()
			select {
			case err := <-done:
				return err
			case s := <-sig:
				return fmt.Errorf("received %s again: stopped without a clean shutdown", s)
			}
		},
	}
	cfg.BindFlags(cmd.Flags())
	cmd.Flags().StringVar(&configFile, "config", "", "JSON file of settings keyed by flag name, e.g. {\"data-dir\": \"/var/lib/linkops\"} (env LINKOPS_CONFIG)")
	return cmd
}

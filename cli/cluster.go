package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"
)

func membersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List the nodes of the cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			var out map[string]any
			if _, err := g.client().Do(ctx, http.MethodGet, "/api/v1/cluster/nodes", nil, &out); err != nil {
				return err
			}
			return g.print(out, []column{{"ID", "id"}, {"ROLE", "role"}, {"STATUS", "status"}, {"VOTER", "voter"},
				{"RACK", "rack"}, {"API", "apiAddr"}, {"RAFT", "raftAddr"}, {"APPLIED", "appliedIndex"}, {"VERSION", "version"}})
		},
	}
}

func snapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Save or restore a snapshot of the whole cluster state"}
	cmd.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Save a verified snapshot to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			resp, err := g.client().Raw(ctx, http.MethodGet, "/api/v1/cluster/snapshot", nil, "", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			tmp := args[0] + ".part"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
				err = fmt.Errorf("snapshot truncated: got %d of %d bytes", n, resp.ContentLength)
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			if err := os.Rename(tmp, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Saved snapshot of %d bytes to %s\n", n, args[0])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole cluster state with the snapshot in FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ctx, cancel := g.ctx()
			defer cancel()
			resp, err := g.client().Raw(ctx, http.MethodPost, "/api/v1/cluster/snapshot", f, "application/octet-stream", nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			fmt.Fprintf(g.stdout, "Restored snapshot %s\n", args[0])
			return nil
		},
	})
	return cmd
}

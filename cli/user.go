package cli

import (
	"net/http"

	"github.com/spf13/cobra"
)

var userColumns = []column{{"ID", "id"}, {"USERNAME", "username"}, {"ROLE", "role"}, {"UPDATED", "updatedAt"}}

func userCmd(g *globals) *cobra.Command {
	cmd := resourceCmds(g, "user", "Manage operator accounts (admins only)", "/api/v1/users", userColumns)
	cmd.Aliases = []string{"users"}
	for _, verb := range []string{"create", "update"} {
		var id, username, password, role string
		c := &cobra.Command{
			Use:   verb,
			Short: verb + " a user",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				body := map[string]any{}
				setIf(body, "id", id)
				setIf(body, "username", username)
				setIf(body, "password", password)
				setIf(body, "role", role)
				if cmd.Name() == "update" {
					return g.update("/api/v1/users/"+id, body, userColumns)
				}
				return g.send(http.MethodPost, "/api/v1/users", body, userColumns)
			},
		}
		c.Flags().StringVar(&id, "id", "", "id (create: optional; update: required)")
		c.Flags().StringVar(&username, "username", "", "user name")
		c.Flags().StringVar(&password, "password", "", "password, at least 8 characters (update: omit to keep)")
		c.Flags().StringVar(&role, "role", "", "admin or viewer")
		if verb == "update" {
			_ = c.MarkFlagRequired("id")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

// resourceCmds builds list, get and delete for a collection; create and update are added by
// the caller because their flags differ per resource.
func resourceCmds(g *globals, use, short, path string, cols []column) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short}
	var page, pageSize int
	var q, sort string
	var filters []string
	list := &cobra.Command{
		Use: "list", Short: "List " + use + "s", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			var out map[string]any
			pairs := []string{"page", strconv.Itoa(page), "pageSize", strconv.Itoa(pageSize), "q", q, "sort", sort}
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					return fmt.Errorf("--filter %q: want key=value, e.g. state=enabled", f)
				}
				pairs = append(pairs, k, v)
			}
			query := client.Query(pairs...)
			if _, err := g.client().Do(ctx, http.MethodGet, path+query, nil, &out); err != nil {
				return err
			}
			if err := g.print(out, cols); err != nil {
				return err
			}
			if g.output != "json" {
				fmt.Fprintf(g.stdout, "(%v in all, page %d)\n", out["total"], page)
			}
			g.warnMissing(out, "the values shown may lack newer ones held there")
			return nil
		},
	}
	list.Flags().IntVar(&page, "page", 1, "page number")
	list.Flags().IntVar(&pageSize, "page-size", 20, "items per page (at most 500)")
	list.Flags().StringVarP(&q, "query", "q", "", "only items whose name contains this text")
	list.Flags().StringArrayVar(&filters, "filter", nil, "equality filter key=value, e.g. type=TCP_SERVER or state=enabled (repeatable)")
	list.Flags().StringVar(&sort, "sort", "", "sort by id, name, createdAt or updatedAt; prefix '-' for descending")
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use: "get ID", Short: "Show one " + use, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			var out map[string]any
			if _, err := g.client().Do(ctx, http.MethodGet, path+"/"+args[0], nil, &out); err != nil {
				return err
			}
			if err := g.print(out, cols); err != nil {
				return err
			}
			g.warnMissing(out, "the values shown may lack newer ones held there")
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "delete ID", Short: "Delete a " + use, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			if _, err := g.client().Do(ctx, http.MethodDelete, path+"/"+args[0], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Deleted %s %s\n", use, args[0])
			return nil
		},
	})
	return cmd
}

// readFileFlag returns a file's contents for a flag that names a file ("" stays "").
func readFileFlag(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return string(b), nil
}

// bodyFromFile reads a JSON object from -f FILE ("-" for standard input) into a map.
func bodyFromFile(g *globals, path string) (map[string]any, error) {
	body := map[string]any{}
	if path == "" {
		return body, nil
	}
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(g.stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object: %w", path, err)
	}
	return body, nil
}

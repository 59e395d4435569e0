package cli

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/spf13/cobra"
)

var certificateColumns = []column{{"ID", "id"}, {"NAME", "name"}, {"SUBJECT", "subject"}, {"DNS NAMES", "dnsNames"},
	{"NOT AFTER", "notAfter"}, {"UPDATED", "updatedAt"}}

func certificateCmd(g *globals) *cobra.Command {
	cmd := resourceCmds(g, "certificate", "Manage TLS certificates used by network components", "/api/v1/certificates", certificateColumns)
	cmd.Aliases = []string{"cert", "certificates"}
	for _, verb := range []string{"create", "update"} {
		var file, id, name, certFile, keyFile, trustFile, desc string
		c := &cobra.Command{
			Use:   verb,
			Short: verb + " a certificate from PEM files",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				body, err := bodyFromFile(g, file)
				if err != nil {
					return err
				}
				for flag, pair := range map[string][2]string{"cert": {"cert", certFile}, "key": {"key", keyFile}, "trust": {"trust", trustFile}} {
					v, err := readFileFlag(flag, pair[1])
					if err != nil {
						return err
					}
					if v != "" {
						body[pair[0]] = v
					}
				}
				setIf(body, "id", id)
				setIf(body, "name", name)
				setIf(body, "description", desc)
				if cmd.Name() == "update" {
					return g.update("/api/v1/certificates/"+id, body, certificateColumns)
				}
				return g.send(http.MethodPost, "/api/v1/certificates", body, certificateColumns)
			},
		}
		c.Flags().StringVarP(&file, "file", "f", "", "JSON body to start from ('-' for standard input)")
		c.Flags().StringVar(&id, "id", "", "id (create: optional, generated when empty; update: required)")
		c.Flags().StringVar(&name, "name", "", "name, at most 64 characters")
		c.Flags().StringVar(&certFile, "cert", "", "PEM file with the certificate chain, leaf first")
		c.Flags().StringVar(&keyFile, "key", "", "PEM file with the private key")
		c.Flags().StringVar(&trustFile, "trust", "", "optional PEM CA bundle for verifying device client certificates")
		c.Flags().StringVar(&desc, "description", "", "description, at most 200 characters")
		if verb == "update" {
			_ = c.MarkFlagRequired("id")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

func setIf(body map[string]any, k, v string) {
	if v != "" {
		body[k] = v
	}
}

// send writes a JSON body and prints the stored record.
func (g *globals) send(method, path string, body any, cols []column) error {
	ctx, cancel := g.ctx()
	defer cancel()
	var out map[string]any
	if _, err := g.client().Do(ctx, method, path, body, &out); err != nil {
		return err
	}
	return g.print(out, cols)
}

// update merges body into the stored record and replaces it, guarded by If-Match so that
// a concurrent change is not silently overwritten.
func (g *globals) update(path string, body map[string]any, cols []column) error {
	ctx, cancel := g.ctx()
	defer cancel()
	c := g.client()
	cur := map[string]any{}
	h, err := c.Do(ctx, http.MethodGet, path, nil, &cur)
	if err != nil {
		return err
	}
	for k, v := range body {
		cur[k] = v
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	resp, err := c.Raw(ctx, http.MethodPut, path, bytes.NewReader(b), "application/json", http.Header{"If-Match": {h.Get("ETag")}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	return g.print(out, cols)
}

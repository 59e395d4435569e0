package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

// DefaultAddr is the API address the client uses when neither --addr, LINKOPS_ADDR nor a
// saved login names one.
const DefaultAddr = "http://127.0.0.1:8844"

type globals struct {
	addr   string
	output string
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

// Execute runs the command line with os.Args and returns the process exit code.
func Execute() int {
	cmd := NewRoot(os.Stdin, os.Stdout, os.Stderr)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree; tests run it with their own streams.
func NewRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin}
	root := &cobra.Command{
		Use:           "linkops",
		Short:         "linkops: the operations plane of an IoT platform, as a cluster of equal nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.addr, "addr", "", "API address of any node (env LINKOPS_ADDR; default: the address of the last login, else "+DefaultAddr+")")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(agentCmd(g), loginCmd(g), membersCmd(g), snapshotCmd(g), certificateCmd(g), userCmd(g))
	root.AddCommand(operationCmds(g)...)
	root.AddCommand(logsCmd(g))
	root.AddCommand(firmwareCmd(g), taskCmd(g), videoCmd(g))
	return root
}

// session is what `linkops login` saves.
type session struct {
	Addr      string    `json:"addr"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// tokenFile is where the login is kept: $LINKOPS_TOKEN_FILE, else the user config dir.
func tokenFile() (string, error) {
	if p := os.Getenv("LINKOPS_TOKEN_FILE"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no place for the login token (set LINKOPS_TOKEN_FILE): %w", err)
	}
	return filepath.Join(dir, "linkops", "token.json"), nil
}

func loadSession() session {
	var s session
	if p, err := tokenFile(); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			_ = json.Unmarshal(b, &s)
		}
	}
	return s
}

// client returns an API client for the chosen address and token.
func (g *globals) client() *client.Client {
	s := loadSession()
	addr := g.addr
	if addr == "" {
		addr = os.Getenv("LINKOPS_ADDR")
	}
	if addr == "" {
		addr = s.Addr
	}
	if addr == "" {
		addr = DefaultAddr
	}
	token := os.Getenv("LINKOPS_TOKEN")
	if token == "" {
		token = s.Token
	}
	return client.New(addr, token)
}

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Minute)
}

// print writes v as JSON, or as a table of the given columns.
func (g *globals) print(v any, cols []column) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		return writeTable(g.stdout, v, cols)
	}
	return errors.New("--output must be table or json")
}

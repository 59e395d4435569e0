package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func loginCmd(g *globals) *cobra.Command {
	var username, password string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and save a token for the other commands",
		Long: "Log in and save a token for the other commands. The password is read from --password,\n" +
			"else LINKOPS_PASSWORD, else the terminal, else the first line of standard input.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if password == "" {
				password = os.Getenv("LINKOPS_PASSWORD")
			}
			if password == "" {
				var err error
				if password, err = readPassword(g); err != nil {
					return err
				}
			}
			c := g.client()
			ctx, cancel := g.ctx()
			defer cancel()
			token, exp, err := c.Login(ctx, username, password)
			if err != nil {
				return err
			}
			path, err := tokenFile()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			b, _ := json.Marshal(session{Addr: c.Addr, Token: token, ExpiresAt: exp})
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return fmt.Errorf("save token: %w", err)
			}
			fmt.Fprintf(g.stdout, "Logged in to %s as %s until %s.\nToken saved in %s.\n", c.Addr, username, exp.Local().Format(time.RFC1123), path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "admin", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer LINKOPS_PASSWORD or the prompt: flags show in ps)")
	return cmd
}

func readPassword(g *globals) (string, error) {
	if f, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(g.stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err == nil {
			err = errors.New("empty")
		}
		return "", fmt.Errorf("no password given (use --password, LINKOPS_PASSWORD or standard input): %w", err)
	}
	return line, nil
}

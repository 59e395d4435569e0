// Command linkops runs a linkops node (`linkops agent`) and is the command-line client of
// its REST API.
package main

import (
	"os"

	"github.com/linkops/linkops/cli"
)

func main() { os.Exit(cli.Execute()) }

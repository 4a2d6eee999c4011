package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newFlagsCmd is a hidden command that prints every command's flags, one
// per line: "COMMAND --NAME" (and "COMMAND -X" for a shorthand; COMMAND is
// the path below weir, e.g. "certs issue"), with
// " deprecated" appended to deprecated ones; "weir --NAME" lines are the
// root's. internal/invariants checks the flags the docs name against it.
func newFlagsCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:    "flags",
		Short:  "print every command's flags (for the docs test)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lines []string
			var walk func(c *cobra.Command)
			walk = func(c *cobra.Command) {
				if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
					return
				}
				name := strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
				add := func(f *pflag.Flag) {
					dep := ""
					if f.Deprecated != "" {
						dep = " deprecated"
					}
					lines = append(lines, fmt.Sprintf("%s --%s%s", name, f.Name, dep))
					if f.Shorthand != "" && f.ShorthandDeprecated == "" {
						lines = append(lines, fmt.Sprintf("%s -%s%s", name, f.Shorthand, dep))
					}
				}
				c.Flags().VisitAll(add)
				c.InheritedFlags().VisitAll(add)
				lines = append(lines, fmt.Sprintf("%s --help", name), fmt.Sprintf("%s -h", name))
				for _, sub := range c.Commands() {
					walk(sub)
				}
			}
			for _, c := range cmd.Root().Commands() {
				walk(c)
			}
			slices.Sort(lines)
			for _, l := range slices.Compact(lines) {
				fmt.Fprintln(s.stdout, l)
			}
			return nil
		},
	}
}

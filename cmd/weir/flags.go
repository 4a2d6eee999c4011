package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-run/weir/internal/bytesize"
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

// sizeValue is a flag taking a size as bytesize.Parse reads it (2GiB).
type sizeValue struct{ p *int64 }

func (v sizeValue) String() string {
	if v.p == nil || *v.p == 0 {
		return "0"
	}
	return strings.ReplaceAll(bytesize.Format(*v.p), " ", "")
}

func (v sizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (sizeValue) Type() string { return "size" }

// daysValue is a duration flag that also takes days (7d), which
// time.ParseDuration does not.
type daysValue struct{ p *time.Duration }

func (v daysValue) String() string {
	if v.p == nil {
		return "0s"
	}
	if d := *v.p; d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return v.p.String()
}

func (v daysValue) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return fmt.Errorf("%q is not a duration (e.g. 7d, 36h, 90m)", s)
		}
		*v.p = time.Duration(days * float64(24*time.Hour))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 7d, 36h, 90m)", s)
	}
	*v.p = d
	return nil
}

func (daysValue) Type() string { return "duration" }

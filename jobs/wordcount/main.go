// Command wordcount counts whitespace-separated words of text files.
//
//	wordcount -- --input FILE|DIR --output DIR
//
// The committed output is one line "word<TAB>count" per distinct word, in
// the visible files of the output directory.
package main

import (
	"errors"
	"flag"
	"strconv"
	"strings"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/file"
)

func main() { sdk.Main(build) }

func build(p *sdk.Pipeline, args []string) error {
	fs := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	input := fs.String("input", "", "text file or directory to read")
	output := fs.String("output", "", "directory for the counts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *input == "" || *output == "" {
		return errors.New("wordcount needs --input and --output")
	}
	lines := file.Lines(p, *input, sdk.WithUID("lines"))
	words := sdk.FlatMap(lines, func(line string, emit func(string)) {
		for _, w := range strings.Fields(line) {
			emit(w)
		}
	}, sdk.WithName("Split"), sdk.WithUID("split"))
	counts := sdk.Aggregate(sdk.KeyBy(words, func(w string) string { return w }), sdk.Count[string](),
		sdk.EmitFinal(), sdk.WithName("Count"), sdk.WithUID("count"))
	file.Sink(counts, *output, func(kv sdk.KV[string, int64]) string {
		return kv.Key + "\t" + strconv.FormatInt(kv.Value, 10)
	}, sdk.WithUID("sink"))
	return nil
}

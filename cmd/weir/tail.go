package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func newTailCmd(s streams) *cobra.Command {
	var limit int
	cmd := clientCommand(s, &cobra.Command{
		Use:   "tail JOB-ID OPERATOR",
		Short: "Print a live sample of the records leaving an operator",
		Long: `Print a live sample of the records leaving an operator of a running job,
one JSON value per line (a record that does not marshal to JSON is printed
as a JSON string of its Go rendering). OPERATOR is the operator's uid or
name; it must be the last operator of its chain. Each subtask samples at
most 100 records per second, and a job nobody tails samples nothing.

With -o json every line is an object with the record's vertex, subtask,
time and value.`,
		Example: `  weir tail 5f0c1d2e3a4b5c6d events --limit 5`,
		Args:    exactArgs("JOB-ID", "OPERATOR"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		if limit < 0 {
			return usageErrorf("--limit must not be negative, got %d", limit)
		}
		return tail(ctx, s.stdout, c, format, &weirv1.TailRequest{JobId: args[0], Operator: args[1], Limit: int32(limit)})
	})
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "exit after this many records (0: until interrupted)")
	return cmd
}

func tail(ctx context.Context, w io.Writer, c *client, format string, req *weirv1.TailRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.jobs.Tail(ctx, req)
	if err != nil {
		return c.rpcError(ctx, err)
	}
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if status.Code(err) == codes.NotFound && ctx.Err() == nil {
			return fmt.Errorf("no job %s", req.JobId)
		}
		if err != nil {
			return c.rpcError(ctx, err)
		}
		if err := printTapRecord(w, format, rec); err != nil {
			return err
		}
	}
}

// tapValue is a record's value as JSON: its own, or its text as a string.
func tapValue(rec *weirv1.TapRecord) json.RawMessage {
	if rec.Json != "" {
		return json.RawMessage(rec.Json)
	}
	b, _ := json.Marshal(rec.Text)
	return b
}

func printTapRecord(w io.Writer, format string, rec *weirv1.TapRecord) error {
	if format == formatJSON {
		return writeJSONLine(w, struct {
			Vertex  int32           `json:"vertex"`
			Subtask int32           `json:"subtask"`
			UnixMs  int64           `json:"unix_ms"`
			Value   json.RawMessage `json:"value"`
		}{rec.VertexId, rec.Subtask, rec.UnixMs, tapValue(rec)})
	}
	_, err := fmt.Fprintf(w, "%s\n", tapValue(rec))
	return err
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/sealing"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// maxExportedKey bounds what weir savepoint import reads.
const maxExportedKey = 64 << 10

// savepointKeyCmds are `weir savepoint export` and `import`: moving the key
// of an encrypted job's savepoints to another cluster.
func savepointKeyCmds(s streams) []*cobra.Command {
	var kek, out string
	export := clientCommand(s, &cobra.Command{
		Use:   "export LOCATION --kek DEST-KEK --out FILE",
		Short: "Write the key of a savepoint's job wrapped by another cluster's KEK (admins)",
		Long: `A savepoint of an encrypted job opens only with its job's data key, which
this cluster keeps wrapped by its own KEK. Export writes that key wrapped by
the destination cluster's KEK (--kek as for weir coordinator: file:PATH or
a KMS URL), for 'weir savepoint import FILE' there; copy the savepoint's
objects to the destination store alongside. The key travels in clear only
between the coordinator and this command, over the cluster's TLS.`,
		Args: exactArgs("LOCATION"),
	}, func(ctx context.Context, c *client, _ string, args []string) error {
		dest, err := sealing.OpenKEK(ctx, kek)
		if err != nil {
			return usageErrorf("%v", err)
		}
		if dest == nil {
			return usageErrorf("--kek: name the destination cluster's KEK")
		}
		defer dest.Close()
		resp, err := unary(ctx, c, c.jobs.ExportJobKey, &weirv1.ExportJobKeyRequest{Location: args[0]})
		if err != nil {
			return err
		}
		wrapped, err := dest.Encrypt(ctx, resp.GetDataKey(), "the data key of job "+resp.GetJobId())
		if err != nil {
			return err
		}
		b, _ := proto.Marshal(&weirv1.ExportedJobKey{JobId: resp.GetJobId(), Wrapped: wrapped, ExportedUnixMs: time.Now().UnixMilli()})
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return fmt.Errorf("write %s: %v", out, unwrapPathError(err))
		}
		_, err = fmt.Fprintf(s.stdout, "the key of job %s, wrapped by %s, is in %s\n", resp.GetJobId(), dest, out)
		return err
	})
	export.Flags().StringVar(&kek, "kek", "", "the destination cluster's KEK: file:PATH or a KMS URL (required)")
	export.Flags().StringVar(&out, "out", "", "file to write the wrapped key to, mode 0600 (required)")
	_ = export.MarkFlagRequired("kek")
	_ = export.MarkFlagRequired("out")

	imp := clientCommand(s, &cobra.Command{
		Use:   "import FILE",
		Short: "Record a job key another cluster exported, so its savepoints restore here (admins)",
		Args:  exactArgs("FILE"),
	}, func(ctx context.Context, c *client, _ string, args []string) error {
		b, err := os.ReadFile(args[0])
		if err != nil {
			return usageErrorf("%v", unwrapPathError(err))
		}
		var key weirv1.ExportedJobKey
		if len(b) > maxExportedKey || proto.Unmarshal(b, &key) != nil || key.JobId == "" {
			return usageErrorf("%s is not a key weir savepoint export wrote", args[0])
		}
		resp, err := unary(ctx, c, c.jobs.ImportJobKey, &weirv1.ImportJobKeyRequest{Key: &key})
		if err != nil {
			return err
		}
		what := "imported"
		if resp.GetAlready() {
			what = "already here"
		}
		_, err = fmt.Fprintf(s.stdout, "the key of job %s: %s; its savepoints restore with weir run --from-savepoint\n", key.JobId, what)
		return err
	})
	return []*cobra.Command{export, imp}
}

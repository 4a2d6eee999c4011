// Package s3test starts real S3 servers for tests and returns the store URL
// weir is given with --store:
//
//	s3://BUCKET?endpoint=http://127.0.0.1:PORT&use_path_style=true&region=us-east-1
//
// Gofakes3 runs gofakes3 in-process with its memory backend; Versitygw runs
// the versitygw gateway as a child process over a posix directory. Both set
// the AWS SDK's environment for the test (static credentials, no profile,
// no EC2 metadata lookup: the machine has no network), so they must not be
// used from parallel tests (t.Setenv forbids it anyway).
//
// CI installs versitygw with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// and sets WEIR_REQUIRE_VERSITYGW=1 so that a missing binary fails the run
// instead of skipping.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/weir-run/weir/internal/freeport"
	"github.com/weir-run/weir/internal/syncbuf"
)

const (
	// Bucket is the bucket every server is started with.
	Bucket = "weir-test"
	// Region is the region in the URLs; both servers accept any.
	Region = "us-east-1"
	// AccessKey and SecretKey are the static credentials put in the
	// environment; versitygw is started with them as its root user.
	AccessKey = "weirtestaccesskey"
	SecretKey = "weirtestsecretkey0123456789"
)

// Env variables read here.
const (
	// EnvVersitygw names the versitygw binary to run.
	EnvVersitygw = "WEIR_VERSITYGW"
	// EnvRequireVersitygw, when set, makes a missing binary a failure.
	EnvRequireVersitygw = "WEIR_REQUIRE_VERSITYGW"
)

// StoreURL is the --store URL for bucket at endpoint (http://host:port).
func StoreURL(endpoint, bucket string) string {
	q := url.Values{}
	q.Set("endpoint", endpoint)
	q.Set("use_path_style", "true")
	q.Set("region", Region)
	return "s3://" + bucket + "?" + q.Encode()
}

// SetEnv points the AWS SDK's default configuration at the static test
// credentials for the rest of the test, and away from anything on the
// machine that could change it: a profile or shared config files, a session
// token, an endpoint override, and the EC2 instance metadata service (which
// the SDK would otherwise try, and wait for, when credentials are missing).
func SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range Env(filepath.Join(t.TempDir(), "no-aws-config")) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Env is SetEnv's environment as KEY=VALUE pairs, for a process started
// with it; noFile is a path that does not exist, given as the AWS config
// and credentials files.
func Env(noFile string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_DEFAULT_PROFILE=",
		"AWS_CONFIG_FILE=" + noFile,
		"AWS_SHARED_CREDENTIALS_FILE=" + noFile,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_S3=",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true",
		"AWS_REGION=" + Region,
	}
}

// Gofakes3 starts gofakes3 with its memory backend on 127.0.0.1, creates
// Bucket and returns the store URL. The server stops at cleanup.
func Gofakes3(t testing.TB) string {
	t.Helper()
	SetEnv(t)
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		t.Fatalf("s3test: gofakes3 create bucket: %v", err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	// httptest.NewServer listens on 127.0.0.1:0.
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	return StoreURL(srv.URL, Bucket)
}

// Versitygw starts versitygw with a posix backend on a temporary directory
// and the test credentials as its root user, on a free port of 127.0.0.1,
// creates Bucket through the S3 API and returns the store URL. The process
// is killed at cleanup.
//
// The binary is $WEIR_VERSITYGW (which must then exist), else versitygw in
// $(go env GOBIN) or $(go env GOPATH)/bin, else on PATH. Without one the
// test is skipped, or fails when WEIR_REQUIRE_VERSITYGW is set (as in CI).
func Versitygw(t testing.TB) string {
	t.Helper()
	bin, err := findVersitygw()
	if err != nil {
		if os.Getenv(EnvVersitygw) != "" {
			t.Fatalf("s3test: %v", err)
		}
		if os.Getenv(EnvRequireVersitygw) != "" {
			t.Fatalf("s3test: %v (%s is set, so this is a failure)", err, EnvRequireVersitygw)
		}
		t.Skipf("s3test: %v; skipping (set %s to make this fail)", err, EnvRequireVersitygw)
	}
	SetEnv(t)
	root := t.TempDir()
	// A free port can be taken between finding it and versitygw binding it:
	// try a few times.
	var lastErr error
	for range 3 {
		endpoint, err := startVersitygw(t, bin, root)
		if err != nil {
			lastErr = err
			continue
		}
		if err := CreateBucket(endpoint, Bucket); err != nil {
			t.Fatalf("s3test: versitygw create bucket: %v", err)
		}
		return StoreURL(endpoint, Bucket)
	}
	t.Fatalf("s3test: start versitygw: %v", lastErr)
	return ""
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// FindVersitygw returns the versitygw binary Versitygw runs: $WEIR_VERSITYGW,
// else versitygw in $(go env GOBIN) or $(go env GOPATH)/bin, else on PATH.
func FindVersitygw() (string, error) { return findVersitygw() }

func findVersitygw() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv(EnvVersitygw); p != "" {
			if _, err := os.Stat(p); err != nil {
				binErr = fmt.Errorf("%s=%s: %w", EnvVersitygw, p, err)
			}
			binPath = p
			return
		}
		var tried []string
		for _, dir := range goBinDirs() {
			p := filepath.Join(dir, "versitygw")
			tried = append(tried, p)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				binPath = p
				return
			}
		}
		if p, err := exec.LookPath("versitygw"); err == nil {
			binPath = p
			return
		}
		binErr = fmt.Errorf("versitygw not found (%s unset; not at %s; not on PATH); install it with "+
			"`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`",
			EnvVersitygw, strings.Join(tried, ", "))
	})
	return binPath, binErr
}

// goBinDirs are where `go install` puts binaries: GOBIN if set, else the
// first GOPATH entry's bin.
func goBinDirs() []string {
	var dirs []string
	gobin, gopath := os.Getenv("GOBIN"), os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		if len(lines) == 2 {
			gobin, gopath = lines[0], lines[1]
		}
	}
	if gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	if list := filepath.SplitList(gopath); len(list) > 0 && list[0] != "" {
		dirs = append(dirs, filepath.Join(list[0], "bin"))
	}
	return dirs
}

// VersitygwArgs is versitygw's command line: serve addr (host:port) with
// the test credentials as its root user, over the posix directory root.
// Only these flags configure it: start it with an environment without
// VGW_* and ROOT_* variables.
func VersitygwArgs(addr, root string) []string {
	return []string{"--port", addr, "--access", AccessKey, "--secret", SecretKey, "--region", Region, "--quiet", "posix", root}
}

// startVersitygw starts the gateway and waits until it answers HTTP. On
// success the process is registered for killing at cleanup.
func startVersitygw(t testing.TB, bin, root string) (endpoint string, err error) {
	port, err := freeport.Port("127.0.0.1")
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, VersitygwArgs(addr, root)...)
	// Only the flags above configure it: none of the VGW_* or ROOT_*
	// variables of the caller's environment.
	cmd.Env = []string{"HOME=" + root, "PATH=" + os.Getenv("PATH")}
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	endpoint = "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return "", fmt.Errorf("versitygw exited before answering (%v); its output:\n%s", err, out.String())
		default:
		}
		// Any HTTP answer (403 to an anonymous request) means it serves.
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("versitygw did not answer on %s within 20s (%v); its output:\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return endpoint, nil
}

func newClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// PendingUploads lists the multipart uploads begun and neither completed
// nor aborted in the bucket of storeURL (a URL returned by Gofakes3 or
// Versitygw), as "key uploadID". They are invisible to List but hold their
// parts' storage.
func PendingUploads(t testing.TB, storeURL string) []string {
	t.Helper()
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := newClient(u.Query().Get("endpoint")).ListMultipartUploads(ctx,
		&s3.ListMultipartUploadsInput{Bucket: aws.String(u.Host)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload" {
		// gofakes3's answer for a bucket that never had a multipart upload.
		return nil
	}
	if err != nil {
		t.Fatalf("s3test: ListMultipartUploads: %v", err)
	}
	var pending []string
	for _, up := range out.Uploads {
		pending = append(pending, aws.ToString(up.Key)+" "+aws.ToString(up.UploadId))
	}
	return pending
}

// CreateBucket creates bucket over the S3 API with the test credentials.
func CreateBucket(endpoint, bucket string) error {
	client := newClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		return err
	}
	_, err = client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		return errors.Join(errors.New("bucket created but HeadBucket fails"), err)
	}
	return nil
}

package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// describeState is a leader loop's state with the given workers (id →
// platform, "" for one that does not report it) and no jobs.
func describeState(workers map[string]string) *leaderState {
	s := &leaderState{c: &Coordinator{logger: slog.New(slog.DiscardHandler)}, logger: slog.New(slog.DiscardHandler),
		workers: map[string]*workerConn{}, jobs: map[string]*jobDriver{}, describes: map[string]*pendingDescribe{}}
	for id, p := range workers {
		w := &workerConn{id: id, slots: 2, close: func(error) {}}
		if p != "" {
			w.goos, w.goarch = p[:5], p[6:]
		}
		s.workers[id] = w
	}
	return s
}

func TestDescriberPicksAWorkerOfTheBinarysPlatform(t *testing.T) {
	for _, tc := range []struct {
		name     string
		workers  map[string]string
		platform string
		want     string // worker id, or the error's message
		code     codes.Code
	}{
		{name: "no worker", workers: nil, platform: "linux/amd64", code: codes.FailedPrecondition,
			want: "no worker is registered to describe the binary on: start a worker, or describe it where it runs (weir run --describe local)"},
		{name: "matching", workers: map[string]string{"a": "linux/arm64", "b": "linux/amd64"}, platform: "linux/amd64", want: "b"},
		{name: "unknown binary platform", workers: map[string]string{"a": "linux/arm64", "b": "linux/amd64"}, platform: "", want: "a"},
		{name: "worker without platform", workers: map[string]string{"a": "linux/arm64", "b": ""}, platform: "linux/amd64", want: "b"},
		{name: "none matches", workers: map[string]string{"a": "linux/arm64", "b": "linux/arm64"}, platform: "linux/amd64", code: codes.FailedPrecondition,
			want: "the binary is built for linux/amd64, but no worker runs it (workers: linux/arm64); build it with CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := describeState(tc.workers).describer(tc.platform)
			if tc.code != codes.OK {
				if status.Code(err) != tc.code || status.Convert(err).Message() != tc.want {
					t.Fatalf("describer: %v, want %v %q", err, tc.code, tc.want)
				}
				return
			}
			if err != nil || w.id != tc.want {
				t.Fatalf("describer: %v, %v, want worker %s", w, err, tc.want)
			}
		})
	}
}

// A worker's reply reaches the call waiting for it, once; a reply from
// another worker is ignored; a worker lost fails its pending describes.
func TestDescribeReplies(t *testing.T) {
	s := describeState(map[string]string{"a": "linux/amd64", "b": "linux/amd64"})
	a, b := s.workers["a"], s.workers["b"]
	p1 := &pendingDescribe{worker: "a", reply: make(chan *weirv1.DescribeReply, 1)}
	p2 := &pendingDescribe{worker: "a", reply: make(chan *weirv1.DescribeReply, 1)}
	s.describes["r1"], s.describes["r2"] = p1, p2

	s.described(b, &weirv1.DescribeReply{RequestId: "r1", Error: "forged"})
	if len(p1.reply) != 0 || s.describes["r1"] == nil {
		t.Fatal("a reply from a worker not asked was taken")
	}
	s.described(a, &weirv1.DescribeReply{RequestId: "r1", Outcome: &weirv1.DescribeOutcome{ExitCode: 3}})
	if r := <-p1.reply; r.Outcome.GetExitCode() != 3 || s.describes["r1"] != nil {
		t.Fatalf("reply %v; pending %v", r, s.describes)
	}
	s.workerGone(context.Background(), a, errors.New("no heartbeat for 5s"))
	if r := <-p2.reply; r.Error != "worker a was lost: no heartbeat for 5s" || len(s.describes) != 0 {
		t.Fatalf("lost worker's describe: %v; pending %v", r, s.describes)
	}
}

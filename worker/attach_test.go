package worker

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A job process's reports go up with the key of the stream they came on,
// whatever job the process names in them; commands come down as sent.
func TestAttachStampsTheStreamsKey(t *testing.T) {
	w := &Worker{logger: slog.New(slog.DiscardHandler)}
	w.mu.procs = map[procKey]*jobProc{}
	w.mu.out = make(chan *weirv1.WorkerMessage, 16)
	key := procKey{"j1", 3, 1}
	assign := &weirv1.AssignTasks{Subtasks: []*weirv1.SubtaskRef{{VertexId: 2, Subtask: 0}}, Store: "mem://"}
	jp := &jobProc{key: key, token: "secret", subtasks: assign.Subtasks, assign: assign,
		cmds: make(chan *weirv1.ProcessCommand, 16), started: make(chan struct{}), tasks: map[taskKey]*weirv1.TaskStateUpdate{}}
	close(jp.started)
	w.mu.procs[key] = jp

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	weirv1.RegisterTaskServiceServer(srv, w)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := weirv1.NewTaskServiceClient(conn).Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_Hello{Hello: &weirv1.ProcessHello{
		JobId: "j1", Attempt: 3, Token: "secret", DataAddress: "127.0.0.1:9"}}}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first.GetAssign(), assign) || !proto.Equal(first.Key, key.proto()) {
		t.Fatalf("first command = %v, want the deployment's assignment for %v", first, key)
	}
	if m := <-w.mu.out; !proto.Equal(m.GetProcessReady().GetKey(), key.proto()) {
		t.Fatalf("ready = %v, want it keyed %v", m, key)
	}

	// The process claims to be another job, in the report and in the key.
	forged := &weirv1.ProcessMessage{Key: &weirv1.ProcessKey{JobId: "other", Attempt: 9},
		Msg: &weirv1.ProcessMessage_TaskState{TaskState: &weirv1.TaskStateUpdate{JobId: "other", Attempt: 9,
			VertexId: 2, State: weirv1.TaskState_TASK_STATE_RUNNING}}}
	if err := stream.Send(forged); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-w.mu.out:
		if got := m.GetProcess(); got.GetTaskState() == nil || !proto.Equal(got.Key, key.proto()) {
			t.Fatalf("relayed %v, want the task state keyed %v", m, key)
		}
	case <-ctx.Done():
		t.Fatal("the report was not relayed")
	}

	// A command for the process reaches it as sent.
	cmd := &weirv1.ProcessCommand{Key: key.proto(), Cmd: &weirv1.ProcessCommand_Complete{Complete: &weirv1.CheckpointComplete{CheckpointId: 7}}}
	w.command(key, cmd)
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, cmd) {
		t.Fatalf("process got %v, want %v", got, cmd)
	}
	stream.CloseSend()
}

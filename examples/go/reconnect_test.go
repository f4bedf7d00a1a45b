package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The reconnect tests start servers of their own (dotnet $MASKFORMER_SERVER_DLL, the models at
// $MASKFORMER_MODELS; tools/test-all.sh sets both) and stop them with SIGTERM or SIGKILL mid-stream, as a
// rollout replaces a pod: the client rule of docs/deploy.md, as tests/MaskFormer.Server.Tests/CliReconnectTests.cs
// checks it for the C# CLI.

// serverProcess is a server of the test's own, killed at the end of the test.
type serverProcess struct {
	command *exec.Cmd
	output  *lockedBuffer
	exited  chan struct{}
}

type lockedBuffer struct {
	mu     sync.Mutex
	buffer bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}

// serverPaths are the server's DLL and the models, from tools/test-all.sh's variables or the repository's
// Release build; a DLL that is not there fails the test.
func serverPaths(t *testing.T) (string, string) {
	t.Helper()
	dll, models := os.Getenv("MASKFORMER_SERVER_DLL"), os.Getenv("MASKFORMER_MODELS")
	if dll == "" {
		dll = "../../src/MaskFormer.Server/bin/Release/net10.0/MaskFormer.Server.dll"
	}
	if models == "" {
		models = "../../models"
	}
	dll, _ = filepath.Abs(dll)
	models, _ = filepath.Abs(models)
	if _, err := os.Stat(dll); err != nil {
		t.Fatalf("no server to start: %v (build it with dotnet build -c Release, or set MASKFORMER_SERVER_DLL)", err)
	}
	return dll, models
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

// startServer starts a server on 127.0.0.1:port with the given settings and waits until its health
// service says SERVING.
func startServer(t *testing.T, port int, settings ...string) *serverProcess {
	t.Helper()
	server := launchServer(t, port, settings...)
	server.waitUntilServing(t, port)
	return server
}

// launchServer starts a server on 127.0.0.1:port with the given settings (after WarmUp=false: a setting
// given again wins), killed at the end of the test, and does not wait for it.
func launchServer(t *testing.T, port int, settings ...string) *serverProcess {
	t.Helper()
	dll, models := serverPaths(t)
	args := append([]string{dll,
		fmt.Sprintf("--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:%d", port),
		"--MaskFormer:Models:Path=" + models,
		"--MaskFormer:Inference:WarmUp=false"}, settings...)
	server := &serverProcess{command: exec.Command("dotnet", args...), output: &lockedBuffer{}, exited: make(chan struct{})}
	server.command.Stdout, server.command.Stderr = server.output, server.output
	if err := server.command.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		server.command.Wait()
		close(server.exited)
	}()
	t.Cleanup(func() {
		server.command.Process.Kill()
		<-server.exited
		if t.Failed() {
			t.Logf("server on port %d:\n%s", port, server.output.String())
		}
	})
	return server
}

// waitUntilServing waits until the server's health service says SERVING.
func (server *serverProcess) waitUntilServing(t *testing.T, port int) {
	t.Helper()

	// Tried every half second while the server starts (gRPC's default backoff grows to 2 minutes).
	conn, err := grpc.Dial(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithInsecure(),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1, MaxDelay: 500 * time.Millisecond}, MinConnectTimeout: 2 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(120 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		response, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && response.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		select {
		case <-server.exited:
			t.Fatalf("the server on port %d exited before it was ready:\n%s", port, server.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server on port %d was not SERVING within 120 s (last: %v, %v):\n%s", port, response.GetStatus(), err, server.output.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *serverProcess) signal(t *testing.T, signal syscall.Signal) {
	t.Helper()
	if err := s.command.Process.Signal(signal); err != nil {
		t.Fatal(err)
	}
}

func (s *serverProcess) waitForExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(timeout):
		t.Fatalf("the server did not exit within %v:\n%s", timeout, s.output.String())
	}
}

// streamLine is a line of the client's standard output and when it came.
type streamLine struct {
	text string
	at   time.Time
}

// streamingClient is `maskformer-go stream` running as its own process.
type streamingClient struct {
	command *exec.Cmd
	stderr  *lockedBuffer
	lines   chan streamLine // closed at the end of its output
	seen    []streamLine
	done    chan struct{}
	code    int
}

func startStreaming(t *testing.T, args ...string) *streamingClient {
	t.Helper()
	client := &streamingClient{command: exec.Command(buildClient(t), args...), stderr: &lockedBuffer{}, lines: make(chan streamLine, 64), done: make(chan struct{})}
	client.command.Env = withoutClientVariables()
	client.command.Stderr = client.stderr
	stdout, err := client.command.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.command.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			client.lines <- streamLine{scanner.Text(), time.Now()}
		}
		close(client.lines)
		err := client.command.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			client.code = exit.ExitCode()
		} else if err != nil {
			client.code = -1
		}
		close(client.done)
	}()
	t.Cleanup(func() {
		client.command.Process.Kill()
		for range client.lines {
		}
		<-client.done
	})
	return client
}

// waitForFrames reads the output until count frame lines have come.
func (c *streamingClient) waitForFrames(t *testing.T, count int, timeout time.Duration) {
	t.Helper()
	expire := time.After(timeout)
	for c.frames() < count {
		select {
		case line, more := <-c.lines:
			if !more {
				t.Fatalf("the stream ended before the server was replaced:\n%s%s", c.output(), c.stderr.String())
			}
			c.seen = append(c.seen, line)
		case <-expire:
			t.Fatalf("%d frame(s) answered within %v, want %d:\n%s", c.frames(), timeout, count, c.output())
		}
	}
}

// wait reads the output to its end and returns the exit code; it fails the test after timeout.
func (c *streamingClient) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	expire := time.After(timeout)
	for {
		select {
		case line, more := <-c.lines:
			if !more {
				<-c.done
				return c.code
			}
			c.seen = append(c.seen, line)
		case <-expire:
			t.Fatalf("the stream did not end within %v:\n%s%s", timeout, c.output(), c.stderr.String())
		}
	}
}

func (c *streamingClient) frames() int {
	count := 0
	for _, line := range c.seen {
		if strings.HasPrefix(line.text, "frame ") {
			count++
		}
	}
	return count
}

func (c *streamingClient) output() string {
	var lines []string
	for _, line := range c.seen {
		lines = append(lines, line.text)
	}
	return strings.Join(lines, "\n") + "\n"
}

// heldClip is the clip in a folder of the test's own whose frames from the held-th on are named pipes: the
// client's read of each waits until open (called once the server is gone) writes the frame into it. On a
// small, busy machine the first answers may come so late that the whole clip is sent, and answered by the
// drain, before the server is told to go.
func heldClip(t *testing.T, held int) (folder string, open func()) {
	t.Helper()
	frames, err := listFrames(clipFolder)
	if err != nil || len(frames) != 16 {
		t.Fatalf("%d frames in %s (%v), want 16", len(frames), clipFolder, err)
	}
	return heldFrames(t, frames, held)
}

// heldFrames is heldClip for the given frames.
func heldFrames(t *testing.T, frames []string, held int) (folder string, open func()) {
	t.Helper()
	folder = t.TempDir()
	var err error
	for i, frame := range frames {
		path := filepath.Join(folder, filepath.Base(frame))
		if i >= held {
			err = syscall.Mkfifo(path, 0o600)
		} else if abs, absErr := filepath.Abs(frame); absErr != nil {
			err = absErr
		} else {
			err = os.Symlink(abs, path)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var opened sync.Once
	return folder, func() {
		opened.Do(func() {
			// In frame order, as the client reads them; each open waits for the client's.
			go func() {
				for _, frame := range frames[held:] {
					data, err := os.ReadFile(frame)
					if err != nil {
						return
					}
					pipe, err := os.OpenFile(filepath.Join(folder, filepath.Base(frame)), os.O_WRONLY, 0)
					if err != nil {
						return
					}
					pipe.Write(data)
					pipe.Close()
				}
			}()
		})
	}
}

var reconnectedLine = regexp.MustCompile(`(?m)^reconnected (\d+) time\(s\) \(.*\); (\d+) frame\(s\) sent again$`)

// streamAcrossAReplacedServer streams the clip paced at 4 fps to a server whose batches wait a second
// (frames are still in its engine when it goes), the last 8 frames held until it is gone, sends it signal
// after 2 answers, starts a second server on the same port once it is gone, and checks that every frame was answered once, in order, with a result,
// some of them only after the second server started, and that the client says it reconnected. It returns
// the client's frame lines after the second server started and how many frames it says it sent again.
func streamAcrossAReplacedServer(t *testing.T, signal syscall.Signal, flags ...string) ([]string, int) {
	port := freePort(t)
	first := startServer(t, port,
		"--MaskFormer:Streaming:DrainTimeout=00:00:05",
		"--MaskFormer:Inference:MaxBatchSize=8",
		"--MaskFormer:Inference:MaxQueueDelay=00:00:01")
	frames, err := listFrames(clipFolder)
	if err != nil || len(frames) != 16 {
		t.Fatalf("%d frames in %s (%v), want 16", len(frames), clipFolder, err)
	}

	folder, release := heldClip(t, 8)
	client := startStreaming(t, append([]string{"stream", folder, "-server", fmt.Sprintf("127.0.0.1:%d", port), "-fps", "4", "-policy", "queue"}, flags...)...)
	client.waitForFrames(t, 2, 60*time.Second)
	first.signal(t, signal)
	first.waitForExit(t, 30*time.Second)
	release()
	secondStarted := time.Now()
	startServer(t, port)
	code := client.wait(t, 120*time.Second)
	output := client.output()
	t.Logf("client output:\n%s%s", output, client.stderr.String())
	if code != 0 {
		t.Fatalf("exit code %d:\n%s%s", code, output, client.stderr.String())
	}

	var answered, afterTheSecond []string
	for _, line := range client.seen {
		if strings.HasPrefix(line.text, "frame ") {
			answered = append(answered, line.text)
			if line.at.After(secondStarted) {
				afterTheSecond = append(afterTheSecond, line.text)
			}
		}
	}
	if len(answered) != len(frames) {
		t.Fatalf("%d frame lines for %d frames:\n%s", len(answered), len(frames), output)
	}
	for i, line := range answered {
		want := fmt.Sprintf("frame %d %s: ", i+1, filepath.Base(frames[i]))
		if !strings.HasPrefix(line, want) || strings.Contains(line, ": error ") || strings.Contains(line, ": skipped (") {
			t.Fatalf("line %d %q: want a result for %s, once and in order", i+1, line, want)
		}
	}
	if !strings.Contains(output, "\nsent 16, results 16, errors 0, skipped 0\n") {
		t.Fatalf("the counts are not sent 16, results 16, errors 0, skipped 0:\n%s", output)
	}
	if len(afterTheSecond) == 0 {
		t.Fatalf("every frame was answered before the second server started:\n%s", output)
	}
	reconnected := reconnectedLine.FindStringSubmatch(output)
	if reconnected == nil {
		t.Fatalf("the client does not say it reconnected:\n%s", output)
	}
	sentAgain, _ := strconv.Atoi(reconnected[2])
	return afterTheSecond, sentAgain
}

func TestStreamOutlivesASigtermDrainAndAServerOnTheSamePort(t *testing.T) {
	streamAcrossAReplacedServer(t, syscall.SIGTERM)
}

func TestStreamOutlivesASigkillSendingAgainTheFramesWithoutAnswer(t *testing.T) {
	// Frames in the killed server's engine got no answer: they went again to the second one.
	if _, sentAgain := streamAcrossAReplacedServer(t, syscall.SIGKILL); sentAgain == 0 {
		t.Fatal("no frame was sent again after SIGKILL")
	}
}

func TestDeltaStreamTakesTheNewServersFirstResultAsItsBase(t *testing.T) {
	// The second server's stream starts anew: its first result is complete, and every later delta is
	// rebuilt on it (a delta on the killed server's last frame would fail the rebuild, exit 1).
	afterTheSecond, _ := streamAcrossAReplacedServer(t, syscall.SIGKILL, "-delta", "-no-check", "-tasks", "semantic,instance,panoptic")
	if !strings.HasSuffix(afterTheSecond[0], " [complete]") {
		t.Fatalf("the second server's first answer %q is not complete", afterTheSecond[0])
	}
	for _, line := range afterTheSecond[1:] {
		if strings.HasSuffix(line, " [delta]") {
			return
		}
	}
	t.Fatalf("no delta after the second server's first answer: %q", afterTheSecond)
}

// A stream with no frame in flight gets no answer to say that its server drains: its status messages say so,
// it half-closes, and the server exits long before its drain time runs out.
func TestStreamWithNoFrameInFlightHalfClosesOnAStatusMessageMarkedDraining(t *testing.T) {
	port := freePort(t)
	// A drain far longer than the test: while the stream is open the first server can end before it only
	// when the stream half-closes.
	first := startServer(t, port, "--MaskFormer:Streaming:DrainTimeout=00:03:00")
	frames, err := listFrames(clipFolder)
	if err != nil || len(frames) < 2 {
		t.Fatalf("%d frames in %s (%v), want 2 or more", len(frames), clipFolder, err)
	}
	// Frame 2 comes once the first server is gone: no answer between the two can say that it drains.
	folder, release := heldFrames(t, frames[:2], 1)
	client := startStreaming(t, "stream", folder, "-server", fmt.Sprintf("127.0.0.1:%d", port))
	client.waitForFrames(t, 1, 60*time.Second)

	// The stream's status messages (one a second) say draining: it half-closes, its call ends OK and the
	// server exits, long before frame 2 would have told it.
	first.signal(t, syscall.SIGTERM)
	first.waitForExit(t, 20*time.Second)
	release()
	launchServer(t, port)
	code := client.wait(t, 150*time.Second)
	output := client.output()
	t.Logf("client output:\n%s%s", output, client.stderr.String())
	if code != 0 {
		t.Fatalf("exit code %d:\n%s%s", code, output, client.stderr.String())
	}
	var answered []string
	for _, line := range client.seen {
		if strings.HasPrefix(line.text, "frame ") {
			answered = append(answered, line.text)
		}
	}
	if len(answered) != 2 {
		t.Fatalf("%d frame lines for 2 frames:\n%s", len(answered), output)
	}
	for i, line := range answered {
		want := fmt.Sprintf("frame %d %s: ", i+1, filepath.Base(frames[i]))
		if !strings.HasPrefix(line, want) || strings.Contains(line, ": error ") || strings.Contains(line, ": skipped (") {
			t.Fatalf("line %d %q: want a result for %s, once and in order", i+1, line, want)
		}
	}
	if !strings.Contains(output, "\nsent 2, results 2, errors 0, skipped 0\n") {
		t.Fatalf("the counts are not sent 2, results 2, errors 0, skipped 0:\n%s", output)
	}
	if reconnectedLine.FindStringSubmatch(output) == nil {
		t.Fatalf("the client does not say it reconnected:\n%s", output)
	}
}

func TestStreamGivesUpAfterReconnectForWhenNoServerComesBack(t *testing.T) {
	port := freePort(t)
	// Slow batches, 4 fps and the last 8 frames held until the kill: the clip is not over when the server is killed.
	server := startServer(t, port, "--MaskFormer:Inference:MaxBatchSize=8", "--MaskFormer:Inference:MaxQueueDelay=00:00:01")
	folder, release := heldClip(t, 8)
	client := startStreaming(t, "stream", folder, "-server", fmt.Sprintf("127.0.0.1:%d", port), "-fps", "4", "-reconnect-for", "3s")
	client.waitForFrames(t, 2, 60*time.Second)
	server.signal(t, syscall.SIGKILL)
	release()
	killed := time.Now()
	code := client.wait(t, 60*time.Second)
	elapsed := time.Since(killed)
	stderr := client.stderr.String()
	t.Logf("after %.1f s: exit code %d, %s", elapsed.Seconds(), code, stderr)
	if code != 1 || !strings.Contains(stderr, "code = Unavailable") || !strings.Contains(stderr, "gave up") {
		t.Fatalf("exit code %d, stderr %q: want 1, UNAVAILABLE and that it gave up", code, stderr)
	}
	if elapsed < time.Second || elapsed > 30*time.Second {
		t.Fatalf("gave up %v after the server was killed; want after some reconnecting (-reconnect-for 3s), under 30 s", elapsed)
	}
}

// scriptedServer runs segmentStream for each call, numbered from 1: faults the real server cannot be made to
// show when wanted.
type scriptedServer struct {
	pb.UnimplementedSegmentationServiceServer
	calls         atomic.Int32
	segmentStream func(call int32, stream pb.SegmentationService_SegmentStreamServer) error
}

func (s *scriptedServer) SegmentStream(stream pb.SegmentationService_SegmentStreamServer) error {
	return s.segmentStream(s.calls.Add(1), stream)
}

func serveScripted(t *testing.T, segmentStream func(int32, pb.SegmentationService_SegmentStreamServer) error) (pb.SegmentationServiceClient, *scriptedServer) {
	scripted := &scriptedServer{segmentStream: segmentStream}
	return serveFake(t, scripted), scripted
}

// serveFake serves a fake SegmentationService in this process and connects to it as the example does.
func serveFake(t *testing.T, fake pb.SegmentationServiceServer) pb.SegmentationServiceClient {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	pb.RegisterSegmentationServiceServer(server, fake)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	conn, err := connect(listener.Addr().String(), defaultConnectTimeout, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewSegmentationServiceClient(conn)
}

func emptyResult(id uint64, draining bool) *pb.SegmentStreamResponse {
	return &pb.SegmentStreamResponse{FrameId: id, Draining: draining, Outcome: &pb.SegmentStreamResponse_Result{Result: &pb.SegmentResponse{}}}
}

// answerAll answers each frame as it comes until the client half-closes.
func answerAll(stream pb.SegmentationService_SegmentStreamServer) error {
	return answerEach(stream, func(id uint64) *pb.SegmentStreamResponse { return emptyResult(id, false) })
}

// answerEach sends answer(frame id) for each frame as it comes until the client half-closes.
func answerEach(stream pb.SegmentationService_SegmentStreamServer, answer func(uint64) *pb.SegmentStreamResponse) error {
	for {
		request, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if frame := request.GetFrame(); frame != nil {
			if err := stream.Send(answer(frame.GetFrameId())); err != nil {
				return err
			}
		}
	}
}

func TestEveryFrameAnsweredThenUnavailableIsSuccess(t *testing.T) {
	// The connection lost after the last answer, before the OK trailers: nothing to send again.
	client, server := serveScripted(t, func(_ int32, stream pb.SegmentationService_SegmentStreamServer) error {
		var ids []uint64
		for {
			request, err := stream.Recv()
			if err != nil {
				break
			}
			if frame := request.GetFrame(); frame != nil {
				ids = append(ids, frame.GetFrameId())
			}
		}
		for _, id := range ids {
			stream.Send(emptyResult(id, false))
		}
		return status.Error(codes.Unavailable, "the connection went away")
	})

	summary, err := streamFramesWith(client, &pb.StreamConfig{}, []string{heldoutImage, heldoutImage}, io.Discard, nil, streamOptions{reconnectFor: time.Second})

	if err != nil || summary.results != 2 || !summary.ordered || summary.reconnects != 0 || server.calls.Load() != 1 {
		t.Fatalf("%v, %+v, %d call(s): want 2 results on one call and no error", err, summary, server.calls.Load())
	}
}

func TestAQuietCallThenALostServerStillReconnects(t *testing.T) {
	// No frame waits while the camera is quiet: the server's restart then is not time without an answer.
	client, _ := serveScripted(t, func(call int32, stream pb.SegmentationService_SegmentStreamServer) error {
		switch call {
		case 1: // frame 1 answered as draining: the client half-closes and goes on with a new call
			stream.Recv()
			request, err := stream.Recv()
			if err != nil {
				return err
			}
			stream.Send(emptyResult(request.GetFrame().GetFrameId(), true))
			for {
				if _, err := stream.Recv(); err != nil {
					return nil
				}
			}
		case 2: // no frame comes (the camera is quiet for longer than reconnectFor) and the server goes
			stream.Recv()
			time.Sleep(1500 * time.Millisecond)
			return status.Error(codes.Unavailable, "restarting")
		default:
			return answerAll(stream)
		}
	})

	summary, err := streamFramesWith(client, &pb.StreamConfig{}, []string{heldoutImage, heldoutImage}, io.Discard, nil, streamOptions{reconnectFor: time.Second, interval: 2 * time.Second})

	if err != nil || summary.results != 2 || !summary.ordered || summary.reconnects != 2 {
		t.Fatalf("%v, %+v: want 2 results after 2 reconnections", err, summary)
	}
}

func TestAPausedCameraAcrossTwoRestartsStillReconnects(t *testing.T) {
	// The backoff's failure count is no time without an answer: after a restart, no frame waits while the
	// camera is quiet, so the server going again then costs nothing.
	client, _ := serveScripted(t, func(call int32, stream pb.SegmentationService_SegmentStreamServer) error {
		switch call {
		case 1: // frame 1 answered, then the server goes (no RetryInfo: the client backs off)
			stream.Recv()
			request, err := stream.Recv()
			if err != nil {
				return err
			}
			stream.Send(emptyResult(request.GetFrame().GetFrameId(), false))
			return status.Error(codes.Unavailable, "restarting")
		case 2: // no frame comes (the camera is quiet for longer than reconnectFor) and the server goes again
			stream.Recv()
			time.Sleep(1500 * time.Millisecond)
			return status.Error(codes.Unavailable, "restarting again")
		default:
			return answerAll(stream)
		}
	})

	summary, err := streamFramesWith(client, &pb.StreamConfig{}, []string{heldoutImage, heldoutImage}, io.Discard, nil, streamOptions{reconnectFor: time.Second, interval: 2 * time.Second})

	if err != nil || summary.results != 2 || !summary.ordered || summary.reconnects != 2 {
		t.Fatalf("%v, %+v: want 2 results after 2 reconnections", err, summary)
	}
}

func TestAFrameWaitingOnARefusingServerGivesUp(t *testing.T) {
	// Every call is refused at once: a frame may never get onto a call, and still waits once it is taken.
	refused, err := status.New(codes.Unavailable, "not up yet").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	client, server := serveScripted(t, func(int32, pb.SegmentationService_SegmentStreamServer) error {
		return refused.Err()
	})

	started := time.Now()
	_, err = streamFramesWith(client, &pb.StreamConfig{}, []string{heldoutImage, heldoutImage}, io.Discard, nil, streamOptions{reconnectFor: time.Second})
	elapsed := time.Since(started)

	if err == nil || !strings.Contains(err.Error(), "gave up") || elapsed < 800*time.Millisecond || elapsed > 10*time.Second {
		t.Fatalf("%v after %v and %d call(s): want it to give up after about reconnectFor (1 s)", err, elapsed, server.calls.Load())
	}
}

func TestAFrameWaitingForALostServerGivesUp(t *testing.T) {
	// The server is gone: every call fails before a frame can be sent on it. The frames are taken between
	// calls, and wait for an answer from then on.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	go server.Serve(listener)
	conn, err := connect(listener.Addr().String(), defaultConnectTimeout, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server.Stop()
	// Once the channel has seen the connection go, no call gets onto it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the channel did not see the server go")
	}

	started := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := streamFramesWith(pb.NewSegmentationServiceClient(conn), &pb.StreamConfig{}, []string{heldoutImage, heldoutImage}, io.Discard, nil, streamOptions{reconnectFor: 5 * time.Second})
		done <- err
	}()
	// The backoff stops at 4 s, under reconnectFor: a client that counted no frame as waiting would reconnect
	// for ever.
	select {
	case err := <-done:
		if elapsed := time.Since(started); err == nil || !strings.Contains(err.Error(), "gave up") || elapsed < time.Second {
			t.Fatalf("%v after %v: want it to give up after about reconnectFor (5 s)", err, elapsed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still reconnecting after 15 s: want it to give up after about reconnectFor (5 s)")
	}
}

// waitForOutput waits until the server has printed text, at most timeout.
func (s *serverProcess) waitForOutput(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.output.String(), text) {
		select {
		case <-s.exited:
			t.Fatalf("the server exited before it printed %q:\n%s", text, s.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not print %q within %v:\n%s", text, timeout, s.output.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A unary call to a server that listens but still loads its models (warm-up on) is refused UNAVAILABLE
// by the server, and made again until it is answered, within the call's deadline (retryingCall).
func TestSegmentCommandRetriesWhileTheServerLoadsItsModels(t *testing.T) {
	binary := buildClient(t)
	port := freePort(t)
	server := launchServer(t, port, "--MaskFormer:Inference:WarmUp=true")
	server.waitForOutput(t, "Now listening on:", 120*time.Second)

	started := time.Now()
	code, stdout, stderr := runClientEnv(t, binary, withoutClientVariables(), "segment", heldoutImage,
		"-server", fmt.Sprintf("127.0.0.1:%d", port), "-tasks", "semantic")
	if code != 0 {
		t.Fatalf("segment exited %d after %v:\n%s%s", code, time.Since(started), stdout, stderr)
	}
	if !strings.Contains(stdout, "semantic label map:") {
		t.Errorf("segment printed no semantic label map:\n%s", stdout)
	}
	// The log line is written as the call ends; the answer may reach the client first.
	server.waitForOutput(t, "SegmentationService/Segment OK", 10*time.Second)
	if output := server.output.String(); !strings.Contains(output, "SegmentationService/Segment Unavailable") {
		t.Errorf("no call was refused UNAVAILABLE while the models loaded (the call came too late to test the retry):\n%s", output)
	}
	t.Logf("answered after %v", time.Since(started))
}

// Two clients wait for a server not started yet: the cleartext one is answered once it is up; the one with
// https:// ends when an attempt finds it speaks cleartext, not at -connect-timeout.
func TestWaitForServerFindsAServerStartedAfterItAndEndsOnceItsSchemeDiffers(t *testing.T) {
	binary := buildClient(t)
	port := freePort(t)
	type outcome struct {
		code           int
		stdout, stderr string
		at             time.Time
	}
	waiting := func(server string) <-chan outcome {
		ended := make(chan outcome, 1)
		go func() {
			code, stdout, stderr := runClientEnv(t, binary, withoutClientVariables(), "segment", heldoutImage, "-tasks", "semantic",
				"-server", server, "-wait-for-server", "-connect-timeout", "60")
			ended <- outcome{code, stdout, stderr, time.Now()}
		}()
		return ended
	}
	cleartext := waiting(fmt.Sprintf("127.0.0.1:%d", port))
	overTLS := waiting(fmt.Sprintf("https://127.0.0.1:%d", port))
	server := launchServer(t, port)
	server.waitForOutput(t, "Now listening on:", 120*time.Second)
	listening := time.Now()

	refused := <-overTLS
	hint := fmt.Sprintf("the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://127.0.0.1:%d)", port)
	if refused.code != 2 || !strings.Contains(refused.stderr, hint) {
		t.Errorf("https://: exit code %d, stderr %q: want 2 and %q", refused.code, refused.stderr, hint)
	}
	if refused.at.Before(listening) {
		t.Errorf("https://: ended before the server listened: %q", refused.stderr)
	} else if elapsed := refused.at.Sub(listening); elapsed > atOnce {
		t.Errorf("https://: took %v to fail once the server listened", elapsed)
	}
	answered := <-cleartext
	if answered.code != 0 || !strings.Contains(answered.stdout, "semantic label map:") {
		t.Errorf("cleartext: exit code %d\n%s%s: want it answered", answered.code, answered.stdout, answered.stderr)
	}
}

// An UNAVAILABLE the transport made (nothing listens at the address) is not the server's word: retryingCall
// returns it after one attempt, without waiting.
func TestRetryingCallDoesNotRetryATransportUnavailable(t *testing.T) {
	conn, err := grpc.Dial(fmt.Sprintf("127.0.0.1:%d", freePort(t)), grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewSegmentationServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), defaultCallDeadline)
	defer cancel()
	attempts, started := 0, time.Now()
	err = retryingCall(ctx, func(ctx context.Context, options ...grpc.CallOption) error {
		attempts++
		_, err := client.Segment(ctx, &pb.SegmentRequest{}, options...)
		return err
	})
	if status.Code(err) != codes.Unavailable || attempts != 1 || time.Since(started) > 5*time.Second {
		t.Fatalf("got %v after %d attempt(s) in %v; want UNAVAILABLE after 1 attempt, at once", err, attempts, time.Since(started))
	}
	t.Logf("%v", err)
}

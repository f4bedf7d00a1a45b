package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// defaultCallDeadline bounds each unary call, its retried attempts included (retryingCall), unless
// -deadline says otherwise.
const defaultCallDeadline = 30 * time.Second

// maxAttempts bounds the attempts of a unary call retried on RESOURCE_EXHAUSTED (retryingCall).
const maxAttempts = 5

// retryingCall makes a unary call, and makes it again when the server says to (as the C# CLI's RetryingCall):
//   - on RESOURCE_EXHAUSTED with google.rpc.RetryInfo (the server was overloaded: a full queue, admission
//     control, its call limit) after the delay it names (0 or more), at most maxAttempts attempts in all;
//     RESOURCE_EXHAUSTED without RetryInfo is returned at once;
//   - on an UNAVAILABLE the server sent (its models are still loading; it is draining; a hung model run's
//     session is being replaced) after the status's RetryInfo delay if it names one > 0, else 0.25 s
//     doubling to 4 s (retryDelay and backoffDelay, as a stream waits).
//
// All within ctx's deadline, which bounds the attempts: a wait that would end past it is not begun and the
// last status is returned. Other statuses are returned at once.
//
// Which UNAVAILABLE the server sent: grpc-go marks no status as the server's, so the rule is that the server
// answered the call with a HEADERS frame (response headers, or trailers-only as Kestrel sends an error).
// grpc.Header then yields metadata, empty or not; it stays nil when the call never had a stream (no
// connection: "connection refused", "connection error") or the stream ended without headers (the connection
// was lost, an HTTP error from something that is not gRPC), which the transport made: not retried. Best
// effort: a connection lost after the server's headers and before its trailers would count as the server's.
func retryingCall(ctx context.Context, call func(context.Context, ...grpc.CallOption) error) error {
	for attempt := 0; ; attempt++ {
		var header metadata.MD
		err := call(ctx, grpc.Header(&header))
		var delay time.Duration
		switch status.Code(err) {
		case codes.ResourceExhausted:
			named, ok := retryInfo(status.Convert(err))
			if !ok || named < 0 || attempt+1 >= maxAttempts {
				return err
			}
			delay = named
		case codes.Unavailable:
			if header == nil {
				return err
			}
			if delay = retryDelay(status.Convert(err)); delay <= 0 {
				delay = backoffDelay(attempt)
			}
		default:
			return err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

func segmentCommand(args []string) int {
	flags := flag.NewFlagSet("segment", flag.ContinueOnError)
	connection := connectionFlags(flags)
	taskList := flags.String("tasks", "semantic,panoptic", "comma-separated tasks: semantic, instance, panoptic")
	deadline := seconds(defaultCallDeadline)
	flags.Var(&deadline, "deadline", "the call's deadline, every retried attempt included, in seconds or as a duration")
	path, err := parseFlags(flags, args, "IMAGE")
	if err != nil {
		return fail(err, 2)
	}
	tasks, err := parseTasks(*taskList)
	if err != nil {
		return fail(err, 2)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(err, 2)
	}

	conn, err := connection.connect()
	if err != nil {
		return fail(err, 2)
	}
	defer conn.Close()

	response, err := segmentWith(pb.NewSegmentationServiceClient(conn), data, tasks, connection.model, time.Duration(deadline))
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: Segment failed with %s: %s\n", status.Code(err), status.Convert(err).Message())
		return 1
	}
	fmt.Printf("image:   %s\n", path)
	printResponse(os.Stdout, response)
	return 0
}

// segment sends one encoded image to the server's default model and returns the answer, sending it again
// when the server says to (retryingCall) within defaultCallDeadline.
func segment(client pb.SegmentationServiceClient, encoded []byte, tasks []pb.SegmentationTask) (*pb.SegmentResponse, error) {
	return segmentWith(client, encoded, tasks, "", defaultCallDeadline)
}

// segmentWith sends one encoded image to model (empty: the server's default) and returns the answer,
// sending it again when the server says to (retryingCall) within deadline, every attempt included.
func segmentWith(client pb.SegmentationServiceClient, encoded []byte, tasks []pb.SegmentationTask, model string, deadline time.Duration) (*pb.SegmentResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	request := &pb.SegmentRequest{
		Model:   model,
		Image:   &pb.Image{Source: &pb.Image_Encoded{Encoded: encoded}},
		Tasks:   tasks,
		FrameId: 1,
	}
	var response *pb.SegmentResponse
	err := retryingCall(ctx, func(ctx context.Context, options ...grpc.CallOption) (err error) {
		response, err = client.Segment(ctx, request, options...)
		return err
	})
	return response, err
}

func printResponse(out io.Writer, r *pb.SegmentResponse) {
	fmt.Fprintf(out, "model:   %s (version %s) on %s\n", r.GetModel(), orDash(r.GetModelVersion()), orDash(r.GetDevice()))
	fmt.Fprintf(out, "size:    %dx%d\n", r.GetWidth(), r.GetHeight())
	total := float64(r.GetWidth()) * float64(r.GetHeight())
	if semantic := r.GetSemantic(); semantic != nil {
		lm := semantic.GetLabelMap()
		fmt.Fprintf(out, "semantic label map: %dx%d, %d-bit, %s, %d bytes\n", lm.GetWidth(), lm.GetHeight(), lm.GetBitsPerPixel(), lm.GetEncoding(), len(lm.GetData()))
		fmt.Fprintln(out, "classes:")
		for _, c := range semantic.GetClasses() {
			fmt.Fprintf(out, "  %3d %-16s %8d px  %5.1f%%\n", c.GetLabelId(), c.GetLabelName(), c.GetArea(), 100*float64(c.GetArea())/total)
		}
	}
	if instance := r.GetInstance(); instance != nil {
		fmt.Fprintf(out, "instances (%d):\n", len(instance.GetInstances()))
		for _, i := range instance.GetInstances() {
			b := i.GetBbox()
			fmt.Fprintf(out, "  %-16s score %.3f  area %6d  bbox [%d, %d, %d, %d]\n", i.GetLabelName(), i.GetScore(), i.GetArea(), b.GetX(), b.GetY(), b.GetWidth(), b.GetHeight())
		}
	}
	if panoptic := r.GetPanoptic(); panoptic != nil {
		fmt.Fprintf(out, "panoptic segments (%d):\n", len(panoptic.GetSegments()))
		for _, s := range panoptic.GetSegments() {
			kind := "stuff"
			if s.GetIsThing() {
				kind = "thing"
			}
			b := s.GetBbox()
			fmt.Fprintf(out, "  id %3d %-16s %s  score %.3f  area %6d  bbox [%d, %d, %d, %d]\n", s.GetId(), s.GetLabelName(), kind, s.GetScore(), s.GetArea(), b.GetX(), b.GetY(), b.GetWidth(), b.GetHeight())
		}
	}
	t := r.GetTimings()
	fmt.Fprintf(out, "timings (ms): decode %.2f, preprocess %.2f, queue %.2f, inference %.2f (batch %d), postprocess %.2f, encode %.2f, total %.2f\n",
		t.GetDecodeMs(), t.GetPreprocessMs(), t.GetQueueMs(), t.GetInferenceMs(), t.GetBatchSize(), t.GetPostprocessMs(), t.GetEncodeMs(), t.GetTotalMs())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// scriptedSegment answers each Segment call, numbered from 1, with segment: an overloaded server, which the
// real server cannot be made to be when wanted.
type scriptedSegment struct {
	pb.UnimplementedSegmentationServiceServer
	calls   atomic.Int32
	segment func(call int32) (*pb.SegmentResponse, error)
}

func (s *scriptedSegment) Segment(context.Context, *pb.SegmentRequest) (*pb.SegmentResponse, error) {
	return s.segment(s.calls.Add(1))
}

func serveSegment(t *testing.T, segment func(int32) (*pb.SegmentResponse, error)) (pb.SegmentationServiceClient, *scriptedSegment) {
	scripted := &scriptedSegment{segment: segment}
	return serveFake(t, scripted), scripted
}

// overloaded is RESOURCE_EXHAUSTED with a google.rpc.RetryInfo of delay.
func overloaded(t *testing.T, delay time.Duration) error {
	t.Helper()
	st, err := status.New(codes.ResourceExhausted, "The queue is full; retry shortly.").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestSegmentRetriesResourceExhaustedAfterItsRetryInfoDelay(t *testing.T) {
	client, server := serveSegment(t, func(call int32) (*pb.SegmentResponse, error) {
		if call <= 2 {
			return nil, overloaded(t, 200*time.Millisecond)
		}
		return &pb.SegmentResponse{Model: "answered"}, nil
	})

	started := time.Now()
	response, err := segment(client, []byte("image"), nil)
	elapsed := time.Since(started)

	if err != nil || response.GetModel() != "answered" || server.calls.Load() != 3 {
		t.Fatalf("%v after %d call(s): want the answer on the third call", err, server.calls.Load())
	}
	if elapsed < 400*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("answered after %v: want about 0.4 s (two waits of the RetryInfo's 0.2 s)", elapsed)
	}
}

func TestSegmentDoesNotRetryResourceExhaustedWithoutRetryInfo(t *testing.T) {
	client, server := serveSegment(t, func(int32) (*pb.SegmentResponse, error) {
		return nil, status.Error(codes.ResourceExhausted, "Received message larger than max")
	})

	started := time.Now()
	_, err := segment(client, []byte("image"), nil)

	if status.Code(err) != codes.ResourceExhausted || server.calls.Load() != 1 || time.Since(started) > 2*time.Second {
		t.Fatalf("%v after %d call(s) in %v: want RESOURCE_EXHAUSTED after 1 call, at once", err, server.calls.Load(), time.Since(started))
	}
}

func TestSegmentRetriesResourceExhaustedAtMostFiveAttempts(t *testing.T) {
	client, server := serveSegment(t, func(int32) (*pb.SegmentResponse, error) {
		return nil, overloaded(t, 0)
	})

	_, err := segment(client, []byte("image"), nil)

	if status.Code(err) != codes.ResourceExhausted || server.calls.Load() != maxAttempts {
		t.Fatalf("%v after %d call(s): want RESOURCE_EXHAUSTED after %d calls", err, server.calls.Load(), maxAttempts)
	}
}

// A server that skips every frame as draining answers nothing: the stream does not go on at once after such
// an OK call, and gives up after reconnectFor (the C# ResumingStream's rule), rather than calling again and
// again without a wait.
func TestFramesSkippedAsDrainingAreNoProgress(t *testing.T) {
	client, server := serveScripted(t, func(call int32, stream pb.SegmentationService_SegmentStreamServer) error {
		if call > 20 { // only a client that takes the skips for progress gets here
			return answerAll(stream)
		}
		return answerEach(stream, func(id uint64) *pb.SegmentStreamResponse {
			skipped := &pb.SegmentStreamResponse_Skipped{Skipped: &pb.FrameSkipped{Reason: pb.SkipReason_SKIP_REASON_DRAINING}}
			return &pb.SegmentStreamResponse{FrameId: id, Draining: true, Outcome: skipped}
		})
	})

	_, err := streamFramesWith(client, &pb.StreamConfig{}, []string{heldoutImage}, io.Discard, nil, streamOptions{reconnectFor: time.Second})

	if err == nil || !strings.Contains(err.Error(), "gave up") || server.calls.Load() > 10 {
		t.Fatalf("%v after %d call(s): want it to give up after a few calls", err, server.calls.Load())
	}
}

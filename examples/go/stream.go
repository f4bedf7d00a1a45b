package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/grpc/codes"
)

// streamDeadline bounds a whole stream, so that a server that stops answering cannot hold the client.
const streamDeadline = 10 * time.Minute

var policies = map[string]pb.OverloadPolicy{
	"queue":       pb.OverloadPolicy_OVERLOAD_POLICY_QUEUE,
	"drop-oldest": pb.OverloadPolicy_OVERLOAD_POLICY_DROP_OLDEST,
	"latest-only": pb.OverloadPolicy_OVERLOAD_POLICY_LATEST_ONLY,
}

// streamSummary counts a stream's answers; ordered is false when they did not come one per frame in
// the order the frames were sent.
type streamSummary struct {
	sent, results, errors, skipped int
	ordered                        bool
}

func streamCommand(args []string) int {
	flags := flag.NewFlagSet("stream", flag.ContinueOnError)
	server, connectTimeout := connectionFlags(flags)
	taskList := flags.String("tasks", "panoptic", "comma-separated tasks: semantic, instance, panoptic")
	policyName := flags.String("policy", "queue", "overload policy: queue, drop-oldest or latest-only")
	inFlight := flags.Uint("in-flight", 0, "frames of the stream in the engine at once (0: the server's default)")
	folder, err := parseFlags(flags, args, "FOLDER")
	if err != nil {
		return fail(err, 2)
	}
	tasks, err := parseTasks(*taskList)
	policy, known := policies[*policyName]
	if err == nil && !known {
		err = fmt.Errorf("unknown policy %q (queue, drop-oldest, latest-only)", *policyName)
	}
	if err != nil {
		return fail(err, 2)
	}
	frames, err := listFrames(folder)
	if err == nil && len(frames) == 0 {
		err = fmt.Errorf("no frames in %s", folder)
	}
	if err != nil {
		return fail(err, 2)
	}

	conn, err := connect(*server, *connectTimeout)
	if err != nil {
		return fail(err, 2)
	}
	defer conn.Close()

	config := &pb.StreamConfig{Tasks: tasks, OverloadPolicy: policy, MaxInFlight: uint32(*inFlight)}
	summary, err := streamFrames(pb.NewSegmentationServiceClient(conn), config, frames, os.Stdout)
	if err != nil {
		return fail(err, 1)
	}
	fmt.Printf("sent %d, results %d, errors %d, skipped %d\n", summary.sent, summary.results, summary.errors, summary.skipped)
	if summary.errors > 0 || !summary.ordered {
		return 1
	}
	return 0
}

// streamFrames sends the config and then every frame (frame ids 1, 2, ...) from a goroutine while this
// one reads the answers as they come, printing a line for each.
func streamFrames(client pb.SegmentationServiceClient, config *pb.StreamConfig, frames []string, out io.Writer) (streamSummary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	stream, err := client.SegmentStream(ctx)
	if err != nil {
		return streamSummary{}, err
	}

	sendErr := make(chan error, 1)
	go func() {
		sendErr <- sendFrames(stream, config, frames)
	}()

	summary := streamSummary{sent: len(frames), ordered: true}
	next := uint64(1)
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return summary, fmt.Errorf("stream failed: %w", err)
		}
		if response.GetStatus() != nil {
			continue
		}
		if response.GetFrameId() != next {
			summary.ordered = false
		}
		next = response.GetFrameId() + 1
		name := "?"
		if id := response.GetFrameId(); id >= 1 && id <= uint64(len(frames)) {
			name = filepath.Base(frames[id-1])
		}
		switch {
		case response.GetResult() != nil:
			summary.results++
			fmt.Fprintf(out, "frame %d %s: %s\n", response.GetFrameId(), name, describeResult(response.GetResult()))
		case response.GetError() != nil:
			summary.errors++
			fmt.Fprintf(out, "frame %d %s: error %s: %s\n", response.GetFrameId(), name, codes.Code(response.GetError().GetCode()), response.GetError().GetMessage())
		case response.GetSkipped() != nil:
			summary.skipped++
			fmt.Fprintf(out, "frame %d %s: skipped (%s)\n", response.GetFrameId(), name, response.GetSkipped().GetReason())
		}
	}
	if err := <-sendErr; err != nil {
		return summary, err
	}
	if next != uint64(len(frames))+1 {
		summary.ordered = false
	}
	return summary, nil
}

func sendFrames(stream pb.SegmentationService_SegmentStreamClient, config *pb.StreamConfig, frames []string) error {
	if err := stream.Send(&pb.SegmentStreamRequest{Message: &pb.SegmentStreamRequest_Config{Config: config}}); err != nil {
		return fmt.Errorf("sending the config: %w", err)
	}
	for i, path := range frames {
		data, err := os.ReadFile(path)
		if err != nil {
			stream.CloseSend()
			return err
		}
		frame := &pb.StreamFrame{FrameId: uint64(i + 1), Image: &pb.Image{Source: &pb.Image_Encoded{Encoded: data}}}
		if err := stream.Send(&pb.SegmentStreamRequest{Message: &pb.SegmentStreamRequest_Frame{Frame: frame}}); err != nil {
			// The answers' side reports why the stream ended.
			return nil
		}
	}
	return stream.CloseSend()
}

// describeResult lists a result's panoptic segments as label#track, its instances' count and its classes.
func describeResult(r *pb.SegmentResponse) string {
	parts := []string{fmt.Sprintf("%dx%d", r.GetWidth(), r.GetHeight())}
	if panoptic := r.GetPanoptic(); panoptic != nil {
		var segments []string
		for _, s := range panoptic.GetSegments() {
			segments = append(segments, fmt.Sprintf("%s#%d", s.GetLabelName(), s.GetTrackId()))
		}
		parts = append(parts, "segments "+strings.Join(segments, " "))
	}
	if instance := r.GetInstance(); instance != nil {
		parts = append(parts, fmt.Sprintf("%d instances", len(instance.GetInstances())))
	}
	if semantic := r.GetSemantic(); semantic != nil {
		var classes []string
		for _, c := range semantic.GetClasses() {
			classes = append(classes, c.GetLabelName())
		}
		parts = append(parts, "classes "+strings.Join(classes, " "))
	}
	return strings.Join(parts, ", ")
}

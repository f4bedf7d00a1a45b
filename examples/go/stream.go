package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// answerTimeout: a stream has no deadline (a camera's may run for days); it is given up when frames have
// waited this long without an answer, so that a server that stops answering cannot hold the client.
var answerTimeout = time.Minute

// answerClock tells the watchdog how many frames wait for an answer, and since when the oldest has waited
// (the last answer, or the send that found none waiting).
type answerClock struct {
	sent, answered atomic.Int64
	since          atomic.Int64 // unix nanoseconds
}

func (c *answerClock) sending() {
	if c.sent.Load() == c.answered.Load() {
		c.since.Store(time.Now().UnixNano())
	}
	c.sent.Add(1)
}

func (c *answerClock) answer() {
	c.answered.Add(1)
	c.since.Store(time.Now().UnixNano())
}

// watch cancels the stream once frames have waited answerTimeout without an answer, and then sends how many
// waited on timedOut; it returns when stop is closed.
func (c *answerClock) watch(cancel context.CancelFunc, timedOut chan<- int64, stop <-chan struct{}) {
	every := answerTimeout / 4
	if every > time.Second {
		every = time.Second
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			waiting := c.sent.Load() - c.answered.Load()
			if waiting > 0 && time.Since(time.Unix(0, c.since.Load())) > answerTimeout {
				timedOut <- waiting
				cancel()
				return
			}
		}
	}
}

var policies = map[string]pb.OverloadPolicy{
	"queue":       pb.OverloadPolicy_OVERLOAD_POLICY_QUEUE,
	"drop-oldest": pb.OverloadPolicy_OVERLOAD_POLICY_DROP_OLDEST,
	"latest-only": pb.OverloadPolicy_OVERLOAD_POLICY_LATEST_ONLY,
}

// streamSummary counts a stream's answers and their bytes; ordered is false when they did not come one
// per frame in the order the frames were sent. No answer is kept: a caller that needs them collects them
// with streamFrames' onResult.
type streamSummary struct {
	sent, results, errors, skipped int
	ordered                        bool
	bytes                          int
}

func streamCommand(args []string) int {
	flags := flag.NewFlagSet("stream", flag.ContinueOnError)
	server, connectTimeout := connectionFlags(flags)
	taskList := flags.String("tasks", "panoptic", "comma-separated tasks: semantic, instance, panoptic")
	policyName := flags.String("policy", "queue", "overload policy: queue, drop-oldest or latest-only")
	inFlight := flags.Uint("in-flight", 0, "frames of the stream in the engine at once (0: the server's default)")
	delta := flags.Bool("delta", false, "ask for results as deltas and rebuild each one into the complete frame")
	keyframeInterval := flags.Uint("keyframe-interval", 0, "with -delta: a complete result at least every N results (0: only when needed)")
	noCheck := flags.Bool("no-check", false, "with -delta: do not stream the frames again without deltas to check every rebuilt frame")
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

	client := pb.NewSegmentationServiceClient(conn)
	config := &pb.StreamConfig{Tasks: tasks, OverloadPolicy: policy, MaxInFlight: uint32(*inFlight)}
	if !*delta {
		summary, err := streamFrames(client, config, frames, os.Stdout, nil)
		if err != nil {
			return fail(err, 1)
		}
		printSummary(summary)
		return exitCode(summary, true)
	}

	config.Delta = &pb.DeltaOptions{Enabled: true, KeyframeInterval: uint32(*keyframeInterval)}
	summary, rebuilt, err := streamWithDeltas(client, config, frames, os.Stdout, !*noCheck)
	if err != nil {
		return fail(err, 1)
	}
	checked := true
	if !*noCheck {
		config.Delta = nil
		var answers []*pb.SegmentResponse
		complete, err := streamFrames(client, config, frames, io.Discard, collect(&answers))
		if err != nil {
			return fail(err, 1)
		}
		if !sameFrames(rebuilt, answers) {
			// A skipping policy gave the two runs different frames: their tracks differ from the first gap
			// on, and their bytes count different answers. Without a skipped frame, a frame failed in one
			// run only: a failure, not a matter of policy.
			skipping := summary.skipped > 0 || complete.skipped > 0
			hint := ""
			if skipping {
				hint = "; use -policy queue, or -no-check"
			}
			fmt.Printf("check: not made: the two streams answered different frames (%d and %d results; the run without deltas: %d errors, %d skipped)%s\n", len(rebuilt), len(answers), complete.errors, complete.skipped, hint)
			checked = skipping
		} else {
			equal, compared, differences := checkRebuilt(rebuilt, answers)
			for _, difference := range differences {
				fmt.Fprintln(os.Stderr, "error: rebuilt", difference)
			}
			fmt.Printf("check: %d of %d rebuilt frames equal the complete answers\n", equal, compared)
			fmt.Printf("bytes: %d with deltas, %d without (%.1f %% saved)\n", summary.bytes, complete.bytes, 100*(1-float64(summary.bytes)/float64(complete.bytes)))
			checked = equal == compared && compared > 0
		}
	}
	printSummary(summary)
	return exitCode(summary, checked)
}

func printSummary(summary streamSummary) {
	fmt.Printf("sent %d, results %d, errors %d, skipped %d\n", summary.sent, summary.results, summary.errors, summary.skipped)
}

func exitCode(summary streamSummary, checked bool) int {
	if summary.errors > 0 || !summary.ordered || !checked {
		return 1
	}
	return 0
}

// streamWithDeltas streams the frames with deltas on and rebuilds every result into its complete frame,
// marking each line [complete] or [delta]; a result that cannot be rebuilt fails the stream. The rebuilt
// frames are returned when keep is set (for a check), else dropped once the next one is built.
func streamWithDeltas(client pb.SegmentationServiceClient, config *pb.StreamConfig, frames []string, out io.Writer, keep bool) (streamSummary, []*frame, error) {
	rebuilder := &deltaRebuilder{}
	var rebuilt []*frame
	var rebuildErr error
	summary, err := streamFrames(client, config, frames, out, func(result *pb.SegmentResponse) string {
		deltas := rebuilder.deltas
		f, err := rebuilder.apply(result)
		if err != nil {
			if rebuildErr == nil {
				rebuildErr = fmt.Errorf("frame %d cannot be rebuilt: %w", result.GetFrameId(), err)
			}
			return " [rebuild failed]"
		}
		if keep {
			rebuilt = append(rebuilt, f)
		}
		if rebuilder.deltas > deltas {
			return " [delta]"
		}
		return " [complete]"
	})
	if err == nil {
		err = rebuildErr
	}
	return summary, rebuilt, err
}

// collect returns an onResult for streamFrames that appends every result to answers.
func collect(answers *[]*pb.SegmentResponse) func(*pb.SegmentResponse) string {
	return func(result *pb.SegmentResponse) string {
		*answers = append(*answers, result)
		return ""
	}
}

// sameFrames says whether both runs answered the same frame ids with results, in the same order.
func sameFrames(rebuilt []*frame, complete []*pb.SegmentResponse) bool {
	if len(rebuilt) != len(complete) {
		return false
	}
	for i, f := range rebuilt {
		if f.result.GetFrameId() != complete[i].GetFrameId() {
			return false
		}
	}
	return true
}

// checkRebuilt compares each rebuilt frame with the complete answer to the same frame id.
func checkRebuilt(rebuilt []*frame, complete []*pb.SegmentResponse) (equal, compared int, differences []string) {
	byID := map[uint64]*pb.SegmentResponse{}
	for _, result := range complete {
		byID[result.GetFrameId()] = result
	}
	for _, f := range rebuilt {
		answer, found := byID[f.result.GetFrameId()]
		if !found {
			continue
		}
		compared++
		want, err := decodeComplete(answer)
		if err != nil {
			differences = append(differences, fmt.Sprintf("frame %d: the complete answer: %v", answer.GetFrameId(), err))
			continue
		}
		if diff := frameDifferences(f, want); len(diff) > 0 {
			differences = append(differences, fmt.Sprintf("frame %d differs: %s", answer.GetFrameId(), strings.Join(diff, ", ")))
			continue
		}
		equal++
	}
	return equal, compared, differences
}

// streamFrames sends the config and then every frame (frame ids 1, 2, ...) from a goroutine while this
// one reads the answers as they come, printing a line for each; onResult, when set, sees every result as
// it comes and returns what to add to its line.
func streamFrames(client pb.SegmentationServiceClient, config *pb.StreamConfig, frames []string, out io.Writer, onResult func(*pb.SegmentResponse) string) (streamSummary, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.SegmentStream(ctx)
	if err != nil {
		return streamSummary{}, err
	}

	clock := &answerClock{}
	clock.since.Store(time.Now().UnixNano())
	timedOut := make(chan int64, 1)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go clock.watch(cancel, timedOut, stopWatch)

	sendErr := make(chan error, 1)
	go func() {
		sendErr <- sendFrames(stream, config, frames, clock)
	}()

	summary := streamSummary{sent: len(frames), ordered: true}
	next := uint64(1)
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			select {
			case waiting := <-timedOut:
				return summary, fmt.Errorf("no answer for %v while %d frame(s) waited: stream cancelled", answerTimeout, waiting)
			default:
				return summary, fmt.Errorf("stream failed: %w", err)
			}
		}
		if response.GetStatus() != nil {
			continue
		}
		clock.answer()
		summary.bytes += proto.Size(response)
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
			suffix := ""
			if onResult != nil {
				suffix = onResult(response.GetResult())
			}
			fmt.Fprintf(out, "frame %d %s: %s%s\n", response.GetFrameId(), name, describeResult(response.GetResult()), suffix)
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

func sendFrames(stream pb.SegmentationService_SegmentStreamClient, config *pb.StreamConfig, frames []string, clock *answerClock) error {
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
		clock.sending()
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

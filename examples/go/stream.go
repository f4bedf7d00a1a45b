package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// answerTimeout: a stream has no deadline (a camera's may run for days); it is given up when frames have
// waited this long without an answer, so that a server that stops answering cannot hold the client.
var answerTimeout = time.Minute

// answerClock tells the watchdog how many frames wait for an answer, and since when the oldest has waited
// (the last answer, or the send that found none waiting); between calls (reconnecting) the watchdog waits.
type answerClock struct {
	sent, answered atomic.Int64
	since          atomic.Int64 // unix nanoseconds
	between        atomic.Bool
}

func (c *answerClock) sending() {
	if c.sent.Load() == c.answered.Load() {
		c.since.Store(time.Now().UnixNano())
	}
	c.sent.Add(1)
}

func (c *answerClock) answer() {
	c.answered.Add(1)
	c.touch()
}

// touch restarts the wait without an answer: at a sign of life, and at each new call, so that the watchdog
// times a call and reconnecting is bounded by reconnectFor alone.
func (c *answerClock) touch() {
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
			if waiting > 0 && !c.between.Load() && time.Since(time.Unix(0, c.since.Load())) > answerTimeout {
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

// streamSummary counts a stream's answers and their bytes (status messages are not answers); ordered is false
// when they did not come one per frame in the order the frames were sent. No answer is kept: a caller that
// needs them collects them with streamFrames' onResult. reconnects counts the calls opened after the first,
// sentAgain the frames sent again on a later call, lastReconnect says why the last new call was opened.
type streamSummary struct {
	sent, results, errors, skipped int
	ordered                        bool
	bytes                          int
	reconnects, sentAgain          int
	lastReconnect                  string
}

// statusIntervalMs: a stream with no frame in flight (a paused camera) gets no answer to carry draining = true;
// a status message this often (StreamConfig.status_interval_ms, unless the config sets one) tells it of a drain
// all the same, so it half-closes then rather than holding the server until its drain time runs out.
const statusIntervalMs = 1000

// defaultReconnectFor: a stream gives up when a frame has waited this long with no call answering.
const defaultReconnectFor = time.Minute

// The wait before a new call after one that failed (a stream's, and a unary call's in retryingCall): 0.25 s
// doubling to 4 s, unless the server's google.rpc.RetryInfo names one.
const (
	firstBackoff   = 250 * time.Millisecond
	longestBackoff = 4 * time.Second
)

// streamOptions are how a stream sends its frames beyond its config.
type streamOptions struct {
	reconnectFor time.Duration // give up when a frame has waited this long with no answer (0: defaultReconnectFor)
	interval     time.Duration // between frames, as a camera sends them (0: as fast as the stream takes them)
}

func streamCommand(args []string) int {
	flags := flag.NewFlagSet("stream", flag.ContinueOnError)
	connection := connectionFlags(flags)
	taskList := flags.String("tasks", "panoptic", "comma-separated tasks: semantic, instance, panoptic")
	policyName := flags.String("policy", "queue", "overload policy: queue, drop-oldest or latest-only")
	inFlight := flags.Uint("in-flight", 0, "frames of the stream in the engine at once (0: the server's default)")
	delta := flags.Bool("delta", false, "ask for results as deltas and rebuild each one into the complete frame")
	keyframeInterval := flags.Uint("keyframe-interval", 0, "with -delta: a complete result at least every N results (0: only when needed)")
	noCheck := flags.Bool("no-check", false, "with -delta: do not stream the frames again without deltas to check every rebuilt frame")
	reconnectFor := flags.Duration("reconnect-for", defaultReconnectFor, "when the server drains or goes away, reconnect and send again every frame without a result; give up when a frame has waited this long with no answer (a pause in the input does not count)")
	fps := flags.Float64("fps", 0, "send at most this many frames a second, as a camera would (0: as fast as the stream takes them)")
	folder, err := parseFlags(flags, args, "FOLDER")
	if err != nil {
		return fail(err, 2)
	}
	tasks, err := parseTasks(*taskList)
	policy, known := policies[*policyName]
	if err == nil && !known {
		err = fmt.Errorf("unknown policy %q (queue, drop-oldest, latest-only)", *policyName)
	}
	if err == nil && *reconnectFor <= 0 {
		err = fmt.Errorf("-reconnect-for %v: give a duration above 0", *reconnectFor)
	}
	if err == nil && *fps < 0 {
		err = fmt.Errorf("-fps %v: give 0 or more", *fps)
	}
	if err != nil {
		return fail(err, 2)
	}
	// A folder that cannot be read, a broken frame link or no frame is the input failing, not the command line:
	// exit 1, as the Python, Node and C# examples and the CLI exit for them.
	frames, err := listFrames(folder)
	if err == nil && len(frames) == 0 {
		err = fmt.Errorf("no frames in %s", folder)
	}
	if err != nil {
		return fail(err, 1)
	}

	conn, err := connection.connect()
	if err != nil {
		return fail(err, 2)
	}
	defer conn.Close()

	client := pb.NewSegmentationServiceClient(conn)
	config := &pb.StreamConfig{Model: connection.model, Tasks: tasks, OverloadPolicy: policy, MaxInFlight: uint32(*inFlight)}
	options := streamOptions{reconnectFor: *reconnectFor}
	if *fps > 0 {
		options.interval = time.Duration(float64(time.Second) / *fps)
	}
	if !*delta {
		summary, err := streamFramesWith(client, config, frames, os.Stdout, nil, options)
		if err != nil {
			return fail(err, 1)
		}
		printSummary(summary)
		return exitCode(summary, true)
	}

	config.Delta = &pb.DeltaOptions{Enabled: true, KeyframeInterval: uint32(*keyframeInterval)}
	summary, rebuilt, err := streamWithDeltasWith(client, config, frames, os.Stdout, !*noCheck, options)
	if err != nil {
		return fail(err, 1)
	}
	checked := true
	// A stream without a result (every frame failed, as for a model the server does not serve) has nothing to check.
	if !*noCheck && summary.results > 0 {
		config.Delta = nil
		var answers []*pb.SegmentResponse
		complete, err := streamFramesWith(client, config, frames, io.Discard, collect(&answers), options)
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
		} else if summary.reconnects > 0 || complete.reconnects > 0 {
			// A new call starts tracking again: track ids, and the segment ids they order, differ from one stream's.
			fmt.Printf("check: not made: a stream went on new calls (with deltas %d time(s), without %d), which start their track ids again\n", summary.reconnects, complete.reconnects)
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
	if summary.reconnects > 0 {
		fmt.Printf("reconnected %d time(s) (%s); %d frame(s) sent again\n", summary.reconnects, summary.lastReconnect, summary.sentAgain)
	}
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
	return streamWithDeltasWith(client, config, frames, out, keep, streamOptions{})
}

// streamWithDeltasWith is streamWithDeltas with options. A new call (after a drain or a reconnection)
// starts a new server-side stream whose first result is complete: the rebuilder takes it as its new base,
// as it takes every complete result.
func streamWithDeltasWith(client pb.SegmentationServiceClient, config *pb.StreamConfig, frames []string, out io.Writer, keep bool, options streamOptions) (streamSummary, []*frame, error) {
	rebuilder := &deltaRebuilder{}
	var rebuilt []*frame
	var rebuildErr error
	summary, err := streamFramesWith(client, config, frames, out, func(result *pb.SegmentResponse) string {
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
	}, options)
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
// it comes and returns what to add to its line. It reconnects as resumingStream does, for
// defaultReconnectFor.
func streamFrames(client pb.SegmentationServiceClient, config *pb.StreamConfig, frames []string, out io.Writer, onResult func(*pb.SegmentResponse) string) (streamSummary, error) {
	return streamFramesWith(client, config, frames, out, onResult, streamOptions{})
}

// streamFramesWith is streamFrames with options.
func streamFramesWith(client pb.SegmentationServiceClient, config *pb.StreamConfig, frames []string, out io.Writer, onResult func(*pb.SegmentResponse) string, options streamOptions) (streamSummary, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if options.reconnectFor <= 0 {
		options.reconnectFor = defaultReconnectFor
	}

	clock := &answerClock{}
	clock.touch()
	timedOut := make(chan int64, 1)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go clock.watch(cancel, timedOut, stopWatch)

	input := make(chan *pb.StreamFrame)
	readErr := make(chan error, 1)
	go func() {
		readErr <- readFrames(ctx, frames, options.interval, input)
	}()

	summary := streamSummary{sent: len(frames), ordered: true}
	next := uint64(1)
	pass := func(response *pb.SegmentStreamResponse) {
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
	if config.StatusIntervalMs == nil {
		config = proto.Clone(config).(*pb.StreamConfig)
		config.StatusIntervalMs = proto.Uint32(statusIntervalMs)
	}
	stream := &resumingStream{client: client, config: config, reconnectFor: options.reconnectFor, input: input, clock: clock, pass: pass, pending: map[uint64]*pendingFrame{}}
	err := stream.run(ctx)
	summary.reconnects, summary.sentAgain, summary.lastReconnect = stream.reconnects, stream.sentAgain, stream.lastReconnect
	if err != nil {
		select {
		case waiting := <-timedOut:
			return summary, fmt.Errorf("no answer for %v while %d frame(s) waited: stream cancelled", answerTimeout, waiting)
		default:
			return summary, fmt.Errorf("stream failed: %w", err)
		}
	}
	// Every frame was taken: the reader is done.
	if err := <-readErr; err != nil {
		return summary, err
	}
	if next != uint64(len(frames))+1 {
		summary.ordered = false
	}
	return summary, nil
}

// readFrames hands the frames to the stream (frame ids 1, 2, ...), one every interval at most, and closes
// input after the last one or at the first file it cannot read (the frames before it are still answered).
func readFrames(ctx context.Context, frames []string, interval time.Duration, input chan<- *pb.StreamFrame) error {
	defer close(input)
	start := time.Now()
	for i, path := range frames {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		frame := &pb.StreamFrame{FrameId: uint64(i + 1), Image: &pb.Image{Source: &pb.Image_Encoded{Encoded: data}}}
		select {
		case <-ctx.Done():
			return nil
		case input <- frame:
		}
	}
	return nil
}

// resumingStream is one logical SegmentStream that outlives the server's drain, as docs/deploy.md asks of a
// client: on an answer or a status message marked draining it half-closes the call (the server still answers
// every frame it holds) and goes on with a new call; when a call ends UNAVAILABLE (the drain time ran out,
// the server went away, it is not up yet) it opens a new one, after the server's RetryInfo delay or a
// backoff, and sends again every frame that got no result (no answer, or skipped as draining). Answers are
// passed on once each, in frame order, whatever call they came on. It gives up when a frame has waited
// reconnectFor with no call answering; while no frame waits (a paused camera), a server that is away costs
// nothing and is tried again. Other failures are not retried.
//
// Frame ids must increase: they order the answers across calls. A new call starts a new server-side
// stream, so its track ids and delta bases start again (its first result is complete).
type resumingStream struct {
	client       pb.SegmentationServiceClient
	config       *pb.StreamConfig // sent first on every call (with statusIntervalMs when it sets no interval)
	reconnectFor time.Duration
	input        <-chan *pb.StreamFrame // closed after the last frame
	clock        *answerClock
	pass         func(*pb.SegmentStreamResponse) // every answer, once, in frame order

	// Frames handed to a call and not yet passed on, by id (order: their ids, ascending): their answer
	// once it came (kept until every earlier frame's answer has been passed on), or nil while the frame
	// must be answered (again). held is a frame taken from the input between calls, sent first on the next.
	mu        sync.Mutex
	pending   map[uint64]*pendingFrame
	order     []uint64
	held      *pendingFrame
	inputDone bool

	reconnects, sentAgain int
	lastReconnect         string
}

type pendingFrame struct {
	frame  *pb.StreamFrame
	taken  time.Time // from the input: it has waited for an answer since, on every call it was sent on
	answer *pb.SegmentStreamResponse
}

// run opens calls until every frame is answered, and returns the first failure that is not retried.
func (s *resumingStream) run(ctx context.Context) error {
	lastAnswer := time.Now()
	failures := 0
	for attempt := 0; ; attempt++ {
		st, answered, drainedIdle := s.call(ctx, attempt)
		s.mu.Lock()
		finished := s.inputDone && len(s.order) == 0 && s.held == nil
		// The oldest frame without a result: frames are taken in id order, the held one last.
		var waitingSince time.Time
		for _, id := range s.order {
			if p := s.pending[id]; p.answer == nil {
				waitingSince = p.taken
				break
			}
		}
		if waitingSince.IsZero() && s.held != nil {
			waitingSince = s.held.taken
		}
		s.mu.Unlock()
		if answered {
			lastAnswer, failures = time.Now(), 0
		}

		code := st.Code()
		// Every frame answered: a call that then lost its connection before its trailers lost nothing.
		if finished && (code == codes.OK || code == codes.Unavailable) {
			return nil
		}
		if code == codes.OK && (answered || drainedIdle) {
			// Half-closed on a drain (an answer or a status message said so): the server answered
			// everything it held; go on at once. A call whose every frame was skipped as draining is no
			// progress: it backs off, as one refused.
			s.lastReconnect = "the server is draining: continued on a new stream"
			continue
		}
		// An OK call that answered nothing is retried as an unavailable one, within the same time.
		if code != codes.OK && code != codes.Unavailable {
			return st.Err()
		}
		reason := st.Message()
		if code == codes.OK {
			reason = "the stream ended without an answer"
		}

		delay := retryDelay(st)
		if delay <= 0 {
			delay = backoffDelay(failures)
			failures++
		}
		// Time without answers counts only while a frame waits for one: a paused camera's silence does not.
		var quiet time.Duration
		if !waitingSince.IsZero() {
			if waitingSince.Before(lastAnswer) {
				waitingSince = lastAnswer
			}
			quiet = time.Since(waitingSince)
		}
		if quiet+delay > s.reconnectFor {
			return status.Errorf(codes.Unavailable, "%s (no answer for %.0f s of reconnecting; gave up)", reason, quiet.Seconds())
		}
		s.lastReconnect = fmt.Sprintf("the stream ended UNAVAILABLE (\"%s\"): reconnecting in %v", reason, delay)
		s.clock.between.Store(true)
		if err := s.wait(ctx, delay); err != nil {
			return err
		}
		s.clock.between.Store(false)
	}
}

// wait waits delay before the next call, taking meanwhile a frame the input hands over (one at most, as
// held): a frame that comes while the server is away waits for an answer from then on, and counts.
func (s *resumingStream) wait(ctx context.Context, delay time.Duration) error {
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		var input <-chan *pb.StreamFrame
		s.mu.Lock()
		if s.held == nil && !s.inputDone {
			input = s.input
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-timer.C:
			return nil
		case frame, more := <-input:
			s.mu.Lock()
			if more {
				s.held = &pendingFrame{frame: frame, taken: time.Now()}
			} else {
				s.inputDone = true
			}
			s.mu.Unlock()
		}
	}
}

func backoffDelay(failures int) time.Duration {
	if failures > 8 {
		failures = 8
	}
	if delay := firstBackoff << failures; delay < longestBackoff {
		return delay
	}
	return longestBackoff
}

// retryDelay is the delay the status's google.rpc.RetryInfo asks for, or 0.
func retryDelay(st *status.Status) time.Duration {
	delay, _ := retryInfo(st)
	return delay
}

// retryInfo is the delay the status's google.rpc.RetryInfo asks for, and whether it names one.
func retryInfo(st *status.Status) (time.Duration, bool) {
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
			return info.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// call runs one call: the frames still to answer first, then new ones until the input ends or the server
// drains. It returns how the call ended, whether it answered a frame, and whether the server said it drains
// while no frame was sent on the call (only a status message can say so then).
func (s *resumingStream) call(ctx context.Context, attempt int) (*status.Status, bool, bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if attempt > 0 {
		s.reconnects++
	}
	// The answer timeout times this call, not the reconnecting before it.
	s.clock.touch()
	stream, err := s.client.SegmentStream(ctx)
	if err != nil {
		return status.Convert(err), false, false
	}

	draining, drained := make(chan struct{}), false
	written, sent := make(chan struct{}), 0
	go func() {
		defer close(written)
		sent = s.write(ctx, stream, draining)
	}()

	answered := false
	var st *status.Status
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			st = status.New(codes.OK, "")
			break
		}
		if err != nil {
			st = status.Convert(err)
			break
		}
		// A status message marked draining half-closes the call as an answer would.
		if response.GetDraining() && !drained {
			close(draining)
			drained = true
		}
		if response.GetStatus() != nil {
			continue
		}
		// A frame skipped as draining got no result: it goes again, and does not count as progress.
		answered = answered || response.GetSkipped().GetReason() != pb.SkipReason_SKIP_REASON_DRAINING
		s.answer(response)
	}
	// The writer may wait for a frame or be stuck on a call that ended: it is done either way.
	cancel()
	<-written
	return st, answered, drained && sent == 0
}

// write sends the config, the frames that got no result, then new frames; it half-closes the call at the
// end of the input or on a drain, and stops when the call ends (its frames stay pending). It returns how
// many frames it sent.
func (s *resumingStream) write(ctx context.Context, stream pb.SegmentationService_SegmentStreamClient, draining <-chan struct{}) (sent int) {
	if stream.Send(&pb.SegmentStreamRequest{Message: &pb.SegmentStreamRequest_Config{Config: s.config}}) != nil {
		return
	}
	var again []*pb.StreamFrame
	s.mu.Lock()
	for _, id := range s.order {
		if p := s.pending[id]; p.answer == nil {
			again = append(again, p.frame)
		}
	}
	s.sentAgain += len(again)
	s.mu.Unlock()
	for _, frame := range again {
		sent++
		if stream.Send(&pb.SegmentStreamRequest{Message: &pb.SegmentStreamRequest_Frame{Frame: frame}}) != nil {
			return
		}
	}

	for {
		// A drain seen stops new frames even when one is ready.
		select {
		case <-draining:
			stream.CloseSend()
			return
		default:
		}
		// The frame taken between calls is the next new one; it keeps the time it was taken.
		s.mu.Lock()
		next := s.held
		s.held = nil
		s.mu.Unlock()
		if next == nil {
			select {
			case <-draining:
				stream.CloseSend()
				return
			case <-ctx.Done():
				return
			case frame, more := <-s.input:
				if !more {
					s.mu.Lock()
					s.inputDone = true
					s.mu.Unlock()
					stream.CloseSend()
					return
				}
				next = &pendingFrame{frame: frame, taken: time.Now()}
			}
		}
		// Pending before it is written: a frame taken here is answered on this call or sent again.
		id := next.frame.GetFrameId()
		s.mu.Lock()
		s.pending[id] = next
		s.order = append(s.order, id)
		s.mu.Unlock()
		s.clock.sending()
		sent++
		if stream.Send(&pb.SegmentStreamRequest{Message: &pb.SegmentStreamRequest_Frame{Frame: next.frame}}) != nil {
			return
		}
	}
}

// answer keeps an answer until every earlier frame's has been passed on, then passes on all it can; a
// frame skipped as draining got no result and goes again on the next call.
func (s *resumingStream) answer(response *pb.SegmentStreamResponse) {
	s.mu.Lock()
	p, known := s.pending[response.GetFrameId()]
	if !known || p.answer != nil || response.GetSkipped().GetReason() == pb.SkipReason_SKIP_REASON_DRAINING {
		s.mu.Unlock()
		s.clock.touch()
		return
	}
	p.answer = response
	var ready []*pb.SegmentStreamResponse
	for len(s.order) > 0 && s.pending[s.order[0]].answer != nil {
		ready = append(ready, s.pending[s.order[0]].answer)
		delete(s.pending, s.order[0])
		s.order = s.order[1:]
	}
	s.mu.Unlock()
	s.clock.answer()
	for _, r := range ready {
		s.pass(r)
	}
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

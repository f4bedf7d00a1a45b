#!/usr/bin/python3
"""Streams a folder of frames through SegmentStream (panoptic, with tracking) and prints each outcome.

    /usr/bin/python3 stream.py FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only]
                                      [--in-flight N] [--tasks semantic,instance,panoptic]
                                      [--keyframe-interval N] [--no-delta] [--no-check]

Frames are the folder's images sorted by name; files whose stem ends with _semantic or _panoptic or
contains _pred (ground truth and predictions stored beside frames) are not sent. The request stream
(a StreamConfig, then one StreamFrame per file) is written by grpc from a generator on its own thread
while this thread reads the responses as they arrive. The server answers every frame exactly once, in
order, with a result, an error or a skip notice. The last line counts them:

    sent 16, results 16, errors 0, skipped 0

Results come as deltas (StreamConfig.delta) unless --no-delta: a DeltaRebuilder (delta.py) turns each
into the complete frame. Unless --no-check, the frames are then streamed again without deltas, every
rebuilt frame is compared with its complete answer (maps pixel for pixel, masks, segments), and the
bytes of both streams' responses are reported:

    check: 16 of 16 rebuilt frames equal the complete answers
    bytes: 34,244 with deltas, 37,606 without (8.9 % saved)

Exit status: 0 when every frame was answered once, in order, and none failed; 1 otherwise (or when the
call fails); 2 when the server cannot be reached.
"""

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from common import DEFAULT_SERVER, connect, list_frames, load_stubs, tls_problem
from delta import DeltaRebuilder, decode_complete, frame_differences

pb, pb_grpc = load_stubs()

POLICIES = {
    "queue": pb.OVERLOAD_POLICY_QUEUE,
    "drop-oldest": pb.OVERLOAD_POLICY_DROP_OLDEST,
    "latest-only": pb.OVERLOAD_POLICY_LATEST_ONLY,
}
TASKS = {
    "semantic": pb.SEGMENTATION_TASK_SEMANTIC,
    "instance": pb.SEGMENTATION_TASK_INSTANCE,
    "panoptic": pb.SEGMENTATION_TASK_PANOPTIC,
}
# A stream has no deadline (a camera's may run for days); it is given up when frames have waited this long
# without a single answer, so that a server that stops answering cannot hold the client.
ANSWER_TIMEOUT_S = 60.0


@dataclass
class StreamSummary:
    """What came back from one stream."""

    sent_ids: list = field(default_factory=list)  # frame ids in the order they were sent
    responses: list = field(default_factory=list)  # SegmentStreamResponse, in arrival order
    results: int = 0
    errors: int = 0
    skipped: int = 0
    statuses: int = 0  # StreamStatus messages (status_interval_ms, or a latency contract): not answers
    bytes: int = 0  # the responses' sizes on the wire
    problems: list = field(default_factory=list)  # contract violations seen (order, counts)

    @property
    def sent(self):
        return len(self.sent_ids)

    @property
    def ok(self):
        return not self.problems and self.errors == 0

    def line(self):
        return f"sent {self.sent}, results {self.results}, errors {self.errors}, skipped {self.skipped}"


def stream_frames(stub, frames, policy=pb.OVERLOAD_POLICY_QUEUE, max_in_flight=0, on_response=None,
                  answer_timeout=ANSWER_TIMEOUT_S, tasks=(pb.SEGMENTATION_TASK_PANOPTIC,), delta=None,
                  status_interval_ms=None):
    """Streams frames, an iterable of (frame_id, encoded image bytes or a Path), and returns a StreamSummary.

    Frame ids must be unique; frames may be a generator that waits for each frame (a camera). on_response(response)
    is called for each frame's response as it arrives (StreamStatus messages are only counted). delta is a
    DeltaOptions, or None for complete results; status_interval_ms asks for a StreamStatus that often. A frame
    file that cannot be read ends the sending there (the frames before it are still answered) and is reported
    in summary.problems, as is a stream cancelled because frames waited answer_timeout seconds without an
    answer. Raises grpc.RpcError when the call fails otherwise.
    """
    summary = StreamSummary()
    lock = threading.Lock()
    # When the oldest frame still waiting began to wait: the last answer, or the send that found none waiting.
    waiting_since = [time.monotonic()]

    def requests():
        # Runs on grpc's request-consumer thread, concurrently with the response loop below. An exception
        # here would end the call as UNKNOWN ("Exception iterating requests!"), naming nothing.
        config = pb.StreamConfig(tasks=list(tasks), overload_policy=policy, max_in_flight=max_in_flight, delta=delta)
        if status_interval_ms is not None:
            config.status_interval_ms = status_interval_ms
        yield pb.SegmentStreamRequest(config=config)
        for frame_id, image in frames:
            try:
                data = image.read_bytes() if isinstance(image, Path) else image
            except OSError as e:
                with lock:
                    summary.problems.append(f"frame {frame_id}: cannot read {image}: {e.strerror or e}; nothing sent after it")
                return
            with lock:
                if len(summary.sent_ids) == len(summary.responses):
                    waiting_since[0] = time.monotonic()
                summary.sent_ids.append(frame_id)
            yield pb.SegmentStreamRequest(frame=pb.StreamFrame(frame_id=frame_id, image=pb.Image(encoded=data)))
        # Returning half-closes the request stream: the server flushes pending frames and ends with OK.

    def read_response(response):
        index = len(summary.responses)
        with lock:
            summary.responses.append(response)
            waiting_since[0] = time.monotonic()
            expected = summary.sent_ids[index] if index < len(summary.sent_ids) else None
        summary.bytes += response.ByteSize()
        if expected is None:
            summary.problems.append(f"response {index} (frame_id {response.frame_id}) answers no sent frame")
        elif response.frame_id != expected:
            summary.problems.append(f"response {index} has frame_id {response.frame_id}, expected {expected}")
        outcome = response.WhichOneof("outcome")
        if outcome == "result":
            summary.results += 1
        elif outcome == "error":
            summary.errors += 1
        elif outcome == "skipped":
            summary.skipped += 1
        else:
            summary.problems.append(f"response for frame_id {response.frame_id} has no outcome")
        if on_response:
            on_response(response)

    call = stub.SegmentStream(requests())
    stopped = threading.Event()
    timed_out = []

    def watch():
        while not stopped.wait(min(1.0, answer_timeout / 4)):
            with lock:
                waiting = len(summary.sent_ids) - len(summary.responses)
                idle = time.monotonic() - waiting_since[0]
            if waiting > 0 and idle > answer_timeout:
                timed_out.append(f"no answer for {answer_timeout:g} s while {waiting} frame(s) waited: stream cancelled")
                call.cancel()
                return

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        for response in call:
            if response.WhichOneof("outcome") == "status":
                # How the stream is doing, not an answer to a frame: outside the one-answer-per-frame order.
                summary.statuses += 1
                continue
            read_response(response)
    except grpc.RpcError:
        if not timed_out:
            raise
    finally:
        stopped.set()
        watchdog.join()
    summary.problems.extend(timed_out)

    if len(summary.responses) != summary.sent:
        summary.problems.append(f"{summary.sent} frames sent but {len(summary.responses)} responses received")
    if summary.results + summary.errors + summary.skipped != summary.sent:
        summary.problems.append("results + errors + skipped != sent")
    return summary


@dataclass
class Check:
    """Rebuilt frames compared with a stream's complete answers, and the bytes both streams took."""

    compared: int = 0
    equal: int = 0
    differences: list = field(default_factory=list)
    delta_bytes: int = 0
    complete_bytes: int = 0
    not_comparable: str = ""  # why the two streams could not be compared, when they could not
    failed: bool = False  # not comparable for a reason that is a failure (no frame was skipped)

    @property
    def passed(self):
        """Not comparable only because frames were skipped, or every frame compared and equal."""
        if self.not_comparable:
            return not self.failed
        return self.compared > 0 and self.equal == self.compared

    def lines(self):
        if self.not_comparable:
            return [f"check: not made: {self.not_comparable}"]
        saved = 100 * (self.complete_bytes - self.delta_bytes) / self.complete_bytes if self.complete_bytes else 0
        return [f"check: {self.equal} of {self.compared} rebuilt frames equal the complete answers",
                f"bytes: {self.delta_bytes:,} with deltas, {self.complete_bytes:,} without ({saved:.1f} % saved)"]


def stream_with_deltas(stub, frames, check=True, keyframe_interval=0, on_frame=None, **options):
    """Streams the frames with deltas, rebuilding each result, then (when check) again without deltas,
    comparing every rebuilt frame with its complete answer. on_frame(response, frame) is called for each
    delta-stream response (frame: the rebuilt Frame, or None for an error or skip).
    Returns (summary, rebuilder, Check or None)."""
    rebuilder = DeltaRebuilder()
    rebuilt = {}

    def on_response(response):
        frame = rebuilder.apply(response.result) if response.WhichOneof("outcome") == "result" else None
        if frame:
            rebuilt[response.frame_id] = frame
        if on_frame:
            on_frame(response, frame)

    # The check streams the same frames again: a generator's (a camera's) are kept as the first stream takes them.
    sent = frames if isinstance(frames, (list, tuple)) or not check else []

    def keep(source):
        for frame in source:
            sent.append(frame)
            yield frame

    summary = stream_frames(stub, frames if sent is frames else keep(frames), on_response=on_response,
                            delta=pb.DeltaOptions(enabled=True, keyframe_interval=keyframe_interval), **options)
    if not check:
        return summary, rebuilder, None
    complete = stream_frames(stub, sent, **options)
    answered = [r.frame_id for r in summary.responses if r.WhichOneof("outcome") == "result"]
    answered_complete = [r.frame_id for r in complete.responses if r.WhichOneof("outcome") == "result"]
    if answered != answered_complete:
        # A skipping policy gave the two runs different frames: their tracks differ from the first gap on,
        # and their bytes count different answers. Without a skipped frame, a frame failed in one run only:
        # a failure, not a matter of policy.
        skipping = summary.skipped > 0 or complete.skipped > 0
        return summary, rebuilder, Check(failed=not skipping, not_comparable=(
            f"the two streams answered different frames ({len(answered)} and {len(answered_complete)} results; "
            f"the run without deltas: {complete.errors} errors, {complete.skipped} skipped)"
            + ("; use --policy queue, or --no-check" if skipping else "")))
    result = Check(delta_bytes=summary.bytes, complete_bytes=complete.bytes)
    for response in complete.responses:
        frame = rebuilt.get(response.frame_id)
        if response.WhichOneof("outcome") != "result" or frame is None:
            continue  # skipped or failed in one of the two runs
        result.compared += 1
        differences = frame_differences(frame, decode_complete(response.result))
        if differences:
            result.differences.append(f"frame {response.frame_id}: {', '.join(differences)} differ")
        else:
            result.equal += 1
    return summary, rebuilder, result


def delta_note(result):
    """How a result came: " [complete]" or " [delta: N patches, M masks by track id]"."""
    deltas = [d for d in (result.semantic.label_map_delta if result.semantic.HasField("label_map_delta") else None,
                          result.panoptic.segment_id_delta if result.panoptic.HasField("segment_id_delta") else None) if d]
    unchanged = sum(1 for i in result.instance.instances if i.mask_unchanged)
    if not deltas and not unchanged:
        return " [complete]"
    return f" [delta: {sum(len(d.patches) for d in deltas)} patches, {unchanged} masks by track id]"


def describe(response, names=None):
    """One line for one response: the outcome and, for a result, the panoptic segments' track ids."""
    name = f" {names[response.frame_id]}" if names and response.frame_id in names else ""
    outcome = response.WhichOneof("outcome")
    head = f"frame {response.frame_id}{name}:"
    if outcome == "result":
        r = response.result
        things = [f"{s.label_name}#{s.track_id}" for s in r.panoptic.segments if s.is_thing]
        stuff = [f"{s.label_name}#{s.track_id}" for s in r.panoptic.segments if not s.is_thing]
        return (f"{head} result in {r.timings.total_ms:.1f} ms; things: {' '.join(things) or '-'}; "
                f"stuff: {' '.join(stuff) or '-'}")
    if outcome == "error":
        code = response.error.code
        code_name = next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))
        return f"{head} ERROR {code_name}: {response.error.message}"
    if outcome == "skipped":
        return f"{head} skipped ({pb.SkipReason.Name(response.skipped.reason)})"
    return f"{head} no outcome"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of frames (sorted by file name)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"host:port, or https://host:port for TLS (default {DEFAULT_SERVER})")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="queue", help="overload policy (default queue)")
    parser.add_argument("--in-flight", type=int, default=0, metavar="N",
                        help="frames of this stream in the engine at once (default 0: the server's default)")
    parser.add_argument("--tasks", default="panoptic", help="comma-separated: semantic, instance, panoptic (default panoptic)")
    parser.add_argument("--keyframe-interval", type=int, default=0, metavar="N",
                        help="a complete result at least every N results (default 0: only when needed)")
    parser.add_argument("--no-delta", action="store_true", help="complete results, not deltas")
    parser.add_argument("--no-check", action="store_true", help="do not compare rebuilt frames with a stream without deltas")
    args = parser.parse_args(argv)
    if problem := tls_problem(args.server):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.in_flight < 0 or args.keyframe_interval < 0:
        parser.error("--in-flight and --keyframe-interval must be 0 or more")
    tasks = [TASKS.get(t.strip()) for t in args.tasks.split(",")]
    if not all(tasks):
        parser.error(f"--tasks takes {', '.join(TASKS)}")

    try:
        paths = list_frames(args.folder)
    except OSError as e:
        print(f"error: cannot read {args.folder}: {e}", file=sys.stderr)
        return 1
    if not paths:
        print(f"error: no frames in {args.folder}", file=sys.stderr)
        return 1
    frames = [(i + 1, p) for i, p in enumerate(paths)]  # frame ids 1..N
    names = {i: p.name for i, p in frames}
    print(f"streaming {len(frames)} frames from {args.folder} to {args.server} "
          f"(policy {args.policy}, in-flight {args.in_flight or 'server default'}, tasks {args.tasks}, "
          f"{'complete results' if args.no_delta else 'deltas'})")

    options = dict(policy=POLICIES[args.policy], max_in_flight=args.in_flight, tasks=tasks)
    check = None
    try:
        with connect(args.server) as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            if args.no_delta:
                summary = stream_frames(stub, frames, on_response=lambda r: print(describe(r, names), flush=True), **options)
            else:
                summary, _, check = stream_with_deltas(
                    stub, frames, check=not args.no_check, keyframe_interval=args.keyframe_interval,
                    on_frame=lambda r, f: print(describe(r, names) + (delta_note(f.result) if f else ""), flush=True),
                    **options)
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        print(f"error: SegmentStream failed with {e.code().name}: {e.details()}", file=sys.stderr)
        return 1

    for problem in summary.problems:
        print(f"error: {problem}", file=sys.stderr)
    for difference in check.differences if check else []:
        print(f"error: rebuilt {difference}", file=sys.stderr)
    for line in check.lines() if check else []:
        print(line)
    print(summary.line())
    return 0 if summary.ok and (check is None or check.passed) else 1


if __name__ == "__main__":
    sys.exit(main())

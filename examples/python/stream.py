#!/usr/bin/python3
"""Streams a folder of frames through SegmentStream (panoptic, with tracking) and prints each outcome.

    /usr/bin/python3 stream.py FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only]
                                      [--in-flight N]

Frames are the folder's images sorted by name; files whose stem ends with _semantic or _panoptic or
contains _pred (ground truth and predictions stored beside frames) are not sent. The request stream
(a StreamConfig, then one StreamFrame per file) is written by grpc from a generator on its own thread
while this thread reads the responses as they arrive. The server answers every frame exactly once, in
order, with a result, an error or a skip notice. The last line counts them:

    sent 16, results 16, errors 0, skipped 0

Exit status: 0 when every frame was answered once, in order, and none failed; 1 otherwise (or when the
call fails); 2 when the server cannot be reached.
"""

import argparse
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from common import DEFAULT_SERVER, connect, list_frames, load_stubs

pb, pb_grpc = load_stubs()

POLICIES = {
    "queue": pb.OVERLOAD_POLICY_QUEUE,
    "drop-oldest": pb.OVERLOAD_POLICY_DROP_OLDEST,
    "latest-only": pb.OVERLOAD_POLICY_LATEST_ONLY,
}
STREAM_DEADLINE_S = 300.0


@dataclass
class StreamSummary:
    """What came back from one stream."""

    sent_ids: list = field(default_factory=list)  # frame ids in the order they were sent
    responses: list = field(default_factory=list)  # SegmentStreamResponse, in arrival order
    results: int = 0
    errors: int = 0
    skipped: int = 0
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
                  timeout=STREAM_DEADLINE_S):
    """Streams frames, a list of (frame_id, encoded image bytes or a Path), and returns a StreamSummary.

    Frame ids must be unique. on_response(response) is called for each response as it arrives.
    Raises grpc.RpcError when the call itself fails.
    """
    summary = StreamSummary()
    lock = threading.Lock()

    def requests():
        # Runs on grpc's request-consumer thread, concurrently with the response loop below.
        yield pb.SegmentStreamRequest(config=pb.StreamConfig(
            tasks=[pb.SEGMENTATION_TASK_PANOPTIC],
            overload_policy=policy,
            max_in_flight=max_in_flight,
        ))
        for frame_id, image in frames:
            data = image.read_bytes() if isinstance(image, Path) else image
            with lock:
                summary.sent_ids.append(frame_id)
            yield pb.SegmentStreamRequest(frame=pb.StreamFrame(frame_id=frame_id, image=pb.Image(encoded=data)))
        # Returning half-closes the request stream: the server flushes pending frames and ends with OK.

    for response in stub.SegmentStream(requests(), timeout=timeout):
        index = len(summary.responses)
        summary.responses.append(response)
        with lock:
            expected = summary.sent_ids[index] if index < len(summary.sent_ids) else None
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

    if len(summary.responses) != summary.sent:
        summary.problems.append(f"{summary.sent} frames sent but {len(summary.responses)} responses received")
    if summary.results + summary.errors + summary.skipped != summary.sent:
        summary.problems.append("results + errors + skipped != sent")
    return summary


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
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"host:port (default {DEFAULT_SERVER})")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="queue", help="overload policy (default queue)")
    parser.add_argument("--in-flight", type=int, default=0, metavar="N",
                        help="frames of this stream in the engine at once (default 0: the server's default)")
    args = parser.parse_args(argv)
    if args.in_flight < 0:
        parser.error("--in-flight must be 0 or more")

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
          f"(policy {args.policy}, in-flight {args.in_flight or 'server default'})")

    try:
        with connect(args.server) as channel:
            summary = stream_frames(
                pb_grpc.SegmentationServiceStub(channel), frames, POLICIES[args.policy], args.in_flight,
                on_response=lambda r: print(describe(r, names), flush=True),
            )
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        print(f"error: SegmentStream failed with {e.code().name}: {e.details()}", file=sys.stderr)
        return 1

    for problem in summary.problems:
        print(f"error: {problem}", file=sys.stderr)
    print(summary.line())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())

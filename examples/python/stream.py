#!/usr/bin/python3
"""Streams a folder of frames through SegmentStream (panoptic, with tracking) and prints each outcome.

    /usr/bin/python3 stream.py FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only]
                                      [--in-flight N] [--tasks semantic,instance,panoptic]
                                      [--keyframe-interval N] [--no-delta] [--no-check] [--reconnect-for S]
                                      [--model NAME] [--connect-timeout SECONDS] [--wait-for-server]

Frames are the folder's images sorted by name; files whose stem ends with _semantic or _panoptic or
contains _pred (ground truth and predictions stored beside frames) are not sent. The request stream
(a StreamConfig, then one StreamFrame per file) is written by grpc from a generator on its own thread
while this thread reads the responses as they arrive. The server answers every frame exactly once, in
order, with a result, an error or a skip notice. The last line counts them:

    sent 16, results 16, errors 0, skipped 0

The stream outlives its server (docs/deploy.md, "Drain"): on an answer or a status message marked
draining it half-closes the call and goes on with a new one (it asks for a status message every second,
so that a stream with no frame in flight hears of a drain too); when a call ends UNAVAILABLE (the server
went away, its drain time ran out, it is not up yet) it reconnects and sends again every frame that got
no result, until a frame has waited --reconnect-for seconds (default 60) with no answer; a pause in the
input does not count. Answers still come once each, in frame order, and a line says it reconnected:

    reconnected 2 time(s) (...); 3 frame(s) sent again

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
import collections
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from common import (DEFAULT_SERVER, backoff, connect, connection_arguments, list_frames, load_stubs, open_channel, retry_delay,
                    tls_problem)
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
# A stream outlives its server (docs/deploy.md, "Drain"): it reconnects until a frame has waited this long with no answer.
RECONNECT_FOR_S = 60.0
# A stream with no frame in flight (a paused camera) gets no answer to carry draining = true: a status message
# this often (StreamConfig.status_interval_ms) tells it of a drain all the same, so it half-closes then rather
# than holding the server until its drain time runs out.
STATUS_INTERVAL_MS = 1000
# A call whose StreamConfig is not written by then is cancelled and opened again (gRPC's connect timeout is 20 s).
CALL_START_TIMEOUT_S = 20.0


@dataclass
class StreamSummary:
    """What came back from one stream (one logical stream: it may have taken several calls)."""

    sent_ids: list = field(default_factory=list)  # frame ids in the order they were first sent
    responses: list = field(default_factory=list)  # SegmentStreamResponse, one per frame, in frame order
    results: int = 0
    errors: int = 0
    skipped: int = 0
    statuses: int = 0  # StreamStatus messages (status_interval_ms, or a latency contract): not answers
    bytes: int = 0  # the answers' sizes on the wire, every call's (StreamStatus messages left out)
    problems: list = field(default_factory=list)  # contract violations seen (order, counts)
    reconnects: int = 0  # calls opened after the first: the server drained or went away
    sent_again: int = 0  # frames sent again because the call they were sent on gave them no result
    last_reconnect: str = ""  # why the last new call was opened

    @property
    def sent(self):
        return len(self.sent_ids)

    @property
    def ok(self):
        return not self.problems and self.errors == 0

    def line(self):
        return f"sent {self.sent}, results {self.results}, errors {self.errors}, skipped {self.skipped}"

    def reconnect_line(self):
        return f"reconnected {self.reconnects} time(s) ({self.last_reconnect}); {self.sent_again} frame(s) sent again"


class Unavailable(grpc.RpcError):
    """An UNAVAILABLE status this client decided on, as grpc.RpcError reports one."""

    def __init__(self, details):
        super().__init__(details)
        self._details = details

    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return self._details

    def trailing_metadata(self):
        return ()


class StreamGaveUp(Unavailable):
    """The stream ended UNAVAILABLE and a frame waited reconnect_for seconds with no answer: the last status, saying so."""


def stream_frames(stub, frames, policy=pb.OVERLOAD_POLICY_QUEUE, max_in_flight=0, on_response=None,
                  answer_timeout=ANSWER_TIMEOUT_S, tasks=(pb.SEGMENTATION_TASK_PANOPTIC,), delta=None,
                  status_interval_ms=None, reconnect_for=RECONNECT_FOR_S, model="", reconnect=None):
    """Streams frames, an iterable of (frame_id, encoded image bytes or a Path), and returns a StreamSummary.

    Frame ids must be unique; frames may be a generator that waits for each frame (a camera). on_response(response)
    is called for each frame's response, once, in frame order (StreamStatus messages are only counted). delta is a
    DeltaOptions, or None for complete results; status_interval_ms asks for a StreamStatus that often (None:
    STATUS_INTERVAL_MS; 0: never); model names
    the model (empty: the server's default; StreamConfig.model). A frame
    file that cannot be read ends the sending there (the frames before it are still answered) and is reported
    in summary.problems, as is a stream cancelled because frames waited answer_timeout seconds without an
    answer.

    The stream outlives its server, as docs/deploy.md asks: on an answer or a status message marked draining the
    call is half-closed (the server still answers what it holds) and the frames go on on a new call; when a call
    ends UNAVAILABLE (the drain time ran out, the server went away or is not up yet) a new one is opened, after the
    server's RetryInfo delay or a backoff, and every frame that got no result (no answer, or skipped as draining) is sent
    again. A new call is a new server-side stream: track ids start again, and with deltas its first result is
    complete. Raises StreamGaveUp (an UNAVAILABLE grpc.RpcError) when a frame has waited reconnect_for seconds
    with no answer (while no frame waits, as with a paused camera, a server that is away is tried again with
    the backoff), and grpc.RpcError when a call fails otherwise. reconnect (common.open_channel for the stub's
    address) opens the channel for a call after one that ended UNAVAILABLE; stream_frames closes the channels it
    opened. Without it, every call goes on the stub's channel, which, once its connection is lost, tries to
    reconnect only every few seconds (1 s growing 1.6-fold), failing calls at once in between: a restarted
    server is found up to tens of seconds late.
    """
    if not reconnect_for > 0:
        raise ValueError(f"reconnect_for {reconnect_for}: give a number of seconds above 0")
    summary = StreamSummary()
    # One lock for everything shared; as a condition it hands frames from the reader thread to a call.
    state = threading.Condition()
    # The next frame (frame_id, bytes, when it was taken from frames) read, not yet taken by a call: at most one.
    ready = collections.deque()
    source = {"done": False, "closed": False}
    # Frames taken by a call and not yet passed on, in the order first sent: frame_id -> [bytes, answer, when it
    # was taken from frames]. The answer is None while the frame must be answered (again); one that came waits
    # for every earlier frame's.
    pending = collections.OrderedDict()
    resent = set()  # frame ids sent again on a later call

    def unanswered():
        return sum(1 for entry in pending.values() if entry[1] is None)

    def read_frames():
        # Its own thread: a camera's generator waits for each frame, whichever call is open (or none).
        try:
            for frame_id, image in frames:
                taken = time.monotonic()  # the frame waits for its answer from here, whichever call it goes on
                try:
                    data = image.read_bytes() if isinstance(image, Path) else image
                except OSError as e:
                    with state:
                        summary.problems.append(f"frame {frame_id}: cannot read {image}: {e.strerror or e}; nothing sent after it")
                    return
                with state:
                    state.wait_for(lambda: not ready or source["closed"])
                    if source["closed"]:
                        return
                    ready.append((frame_id, data, taken))
                    state.notify_all()
        except Exception as e:  # noqa: BLE001 - the caller's generator failed: the frames before are still answered
            with state:
                summary.problems.append(f"reading the frames failed: {e!r}; nothing sent after it")
        finally:
            with state:
                source["done"] = True
                state.notify_all()

    def pass_on(response):
        summary.responses.append(response)
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

    def run_call(stub, attempt):
        """One call: the frames still to answer, then new ones until the input ends or the server drains.
        Returns (the grpc.RpcError it ended with, or None for OK; whether it answered; whether the server said it
        drains while no frame was sent on it; why it was cancelled)."""
        sent = []  # frame ids in the order written on this call
        # Frames wait from the call's start (those to send again), the last answer, or the send that found none waiting.
        call_state = {"answers": 0, "ended": False, "draining": False, "started": False,
                      "waiting_since": time.monotonic()}

        def requests():
            # Runs on grpc's request-consumer thread, concurrently with the response loop below. An exception
            # here would end the call as UNKNOWN ("Exception iterating requests!"), naming nothing.
            config = pb.StreamConfig(tasks=list(tasks), overload_policy=policy, max_in_flight=max_in_flight, delta=delta,
                                     model=model)
            config.status_interval_ms = STATUS_INTERVAL_MS if status_interval_ms is None else status_interval_ms
            yield pb.SegmentStreamRequest(config=config)
            with state:
                call_state["started"] = True  # grpc asks for the next request once the config is written
                again = [(frame_id, entry[0]) for frame_id, entry in pending.items() if entry[1] is None]
                resent.update(frame_id for frame_id, _ in again)
                summary.sent_again = len(resent)
                sent.extend(frame_id for frame_id, _ in again)
            for frame_id, data in again:
                yield pb.SegmentStreamRequest(frame=pb.StreamFrame(frame_id=frame_id, image=pb.Image(encoded=data)))
            while True:
                with state:
                    state.wait_for(lambda: ready or source["done"] or call_state["ended"] or call_state["draining"])
                    if call_state["ended"] or call_state["draining"] or not ready:
                        # Half-closes the request stream: the server answers the frames it holds and ends with OK.
                        return
                    frame_id, data, taken = ready.popleft()
                    state.notify_all()
                    if not unanswered():
                        call_state["waiting_since"] = time.monotonic()
                    # Pending before it is written: a frame taken here is answered on this call or sent again.
                    pending[frame_id] = [data, None, taken]
                    summary.sent_ids.append(frame_id)
                    sent.append(frame_id)
                yield pb.SegmentStreamRequest(frame=pb.StreamFrame(frame_id=frame_id, image=pb.Image(encoded=data)))

        def take(response):
            summary.bytes += response.ByteSize()
            with state:
                index = call_state["answers"]
                call_state["answers"] += 1
                call_state["waiting_since"] = time.monotonic()
                if response.draining:
                    call_state["draining"] = True
                    state.notify_all()
                on_call = f" on call {attempt + 1}" if attempt else ""
                expected = sent[index] if index < len(sent) else None
                if expected is None:
                    summary.problems.append(f"response {index}{on_call} (frame_id {response.frame_id}) answers no sent frame")
                    return []
                if response.frame_id != expected:
                    summary.problems.append(f"response {index}{on_call} has frame_id {response.frame_id}, expected {expected}")
                entry = pending.get(response.frame_id)
                if entry is None or entry[1] is not None:
                    return []
                if response.WhichOneof("outcome") == "skipped" and response.skipped.reason == pb.SKIP_REASON_DRAINING:
                    return []  # no result: sent again on the next call
                entry[1] = response
                answers = []
                while pending and next(iter(pending.values()))[1] is not None:
                    answers.append(pending.popitem(last=False)[1][1])
                return answers

        call = stub.SegmentStream(requests())
        if attempt:
            summary.reconnects += 1
        stopped = threading.Event()
        timed_out, stuck = [], []
        # The responses are read on a thread of their own: a call opened while its server was being replaced
        # has been seen (grpcio 1.51) never to start and to ignore cancel(), blocking its reader for good.
        events = queue.Queue()

        def read():
            try:
                for response in call:
                    events.put(response)
                events.put(None)
            except grpc.RpcError as e:
                events.put(e)

        def watch():
            while not stopped.wait(min(1.0, answer_timeout / 4)):
                with state:
                    # Frames to send again count too: a call that never gets to send them holds them as well.
                    waiting = unanswered()
                    idle = time.monotonic() - call_state["waiting_since"]
                    started = call_state["started"]
                if waiting > 0 and idle > answer_timeout:
                    timed_out.append(f"no answer for {answer_timeout:g} s while {waiting} frame(s) waited: stream cancelled")
                elif not started and time.monotonic() - opened > CALL_START_TIMEOUT_S:
                    stuck.append(Unavailable(f"the call did not start within {CALL_START_TIMEOUT_S:g} s"))
                else:
                    continue
                call.cancel()
                events.put(None)  # whether or not the reader ever returns
                return

        opened = time.monotonic()
        threading.Thread(target=read, daemon=True).start()
        watchdog = threading.Thread(target=watch, daemon=True)
        watchdog.start()
        error, answered = None, False
        try:
            while (response := events.get()) is not None:
                if isinstance(response, grpc.RpcError):
                    raise response
                if response.WhichOneof("outcome") == "status":
                    # How the stream is doing, not an answer to a frame: outside the one-answer-per-frame order.
                    # Marked draining, it half-closes the call as an answer would.
                    summary.statuses += 1
                    if response.draining:
                        with state:
                            call_state["draining"] = True
                            state.notify_all()
                    continue
                # A frame skipped as draining got no result: it goes again, and does not count as progress.
                answered |= not (response.WhichOneof("outcome") == "skipped"
                                 and response.skipped.reason == pb.SKIP_REASON_DRAINING)
                for answer in take(response):
                    pass_on(answer)
        except grpc.RpcError as e:
            error = e
        finally:
            stopped.set()
            watchdog.join()
            with state:
                # The requests stop here, whatever they wait for: the frames they took stay pending.
                call_state["ended"] = True
                state.notify_all()
        if stuck:
            error = stuck[0]  # as UNAVAILABLE: sent again on a new call
        with state:
            drained_idle = call_state["draining"] and not sent
        return error, answered, drained_idle, timed_out[0] if timed_out else None

    threading.Thread(target=read_frames, daemon=True).start()
    last_answer, failures, attempt = time.monotonic(), 0, 0
    opened = None  # the channel reconnect opened last
    try:
        while True:
            error, answered, drained_idle, cancelled = run_call(stub, attempt)
            attempt += 1
            if cancelled:
                summary.problems.append(cancelled)
                break
            with state:
                finished = source["done"] and not ready and not pending
                # The oldest frame taken from the input with no result yet: on a call, or still in ready.
                waiting_since = min([entry[2] for entry in pending.values() if entry[1] is None]
                                    + [taken for _, _, taken in ready], default=None)
            if answered:
                last_answer, failures = time.monotonic(), 0
            # Every frame answered: a call that then lost its connection before its trailers lost nothing.
            if finished and (error is None or error.code() == grpc.StatusCode.UNAVAILABLE):
                break
            if error is None and (answered or drained_idle):
                # Half-closed on a drain (an answer or a status message said so): the server answered everything
                # it held; go on at once. A call whose every frame was skipped as draining is no progress: it
                # backs off, as one refused.
                summary.last_reconnect = "the server is draining: continued on a new stream"
                continue
            # A call that ended OK without an answer is retried as an unavailable one, within the same time.
            if error is not None and error.code() != grpc.StatusCode.UNAVAILABLE:
                raise error
            details = error.details() if error is not None else "the stream ended without an answer"
            # Time without answers counts only while a frame waits for one: a paused camera's silence does not.
            quiet = time.monotonic() - max(last_answer, waiting_since) if waiting_since is not None else 0.0
            delay = retry_delay(error) if error is not None else None
            if delay is None:
                delay = backoff(failures)
                failures += 1
            if quiet + delay > reconnect_for:
                raise StreamGaveUp(f"{details} (no answer for {quiet:.0f} s of reconnecting; gave up)")
            summary.last_reconnect = f'the stream ended UNAVAILABLE ("{details}"): reconnecting in {delay:g} s'
            time.sleep(delay)
            if reconnect is not None:
                if opened is not None:
                    opened.close()
                opened = reconnect()
                stub = pb_grpc.SegmentationServiceStub(opened)
    finally:
        if opened is not None:
            opened.close()
        with state:
            source["closed"] = True  # the reader stops at its next frame
            state.notify_all()

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
    if not check or summary.problems or not summary.results:
        # A stream cancelled for want of answers (or that broke the stream contract) has failed already: a
        # second stream to compare it with would only wait as long again. One without a result (every frame
        # failed, as for a model the server does not serve) has nothing to check.
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
    if summary.reconnects or complete.reconnects:
        # A new call starts tracking again: track ids, and the segment ids they order, differ from one stream's.
        return summary, rebuilder, Check(failed=False, not_comparable=(
            f"a stream went on new calls (with deltas {summary.reconnects} time(s), without {complete.reconnects}), "
            "which start their track ids again"))
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
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help="host:port or http(s)://host[:port], https:// for TLS; a URL without a port takes its "
                             f"scheme's (80, 443), an IPv6 host goes in brackets ([::1]:5081) (default {DEFAULT_SERVER})")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="queue", help="overload policy (default queue)")
    parser.add_argument("--in-flight", type=int, default=0, metavar="N",
                        help="frames of this stream in the engine at once (default 0: the server's default)")
    parser.add_argument("--tasks", default="panoptic", help="comma-separated: semantic, instance, panoptic (default panoptic)")
    parser.add_argument("--keyframe-interval", type=int, default=0, metavar="N",
                        help="a complete result at least every N results (default 0: only when needed)")
    parser.add_argument("--no-delta", action="store_true", help="complete results, not deltas")
    parser.add_argument("--no-check", action="store_true", help="do not compare rebuilt frames with a stream without deltas")
    parser.add_argument("--reconnect-for", type=float, default=RECONNECT_FOR_S, metavar="S",
                        help="when the server drains or goes away, reconnect and send again every frame without a result, "
                             f"until a frame has waited S seconds with no answer (default {RECONNECT_FOR_S:g})")
    parser.add_argument("--model", default="", metavar="NAME", help="the model to use (default: the server's default model)")
    connection_arguments(parser)
    args = parser.parse_args(argv)
    if problem := tls_problem(args.server):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.in_flight < 0 or args.keyframe_interval < 0:
        parser.error("--in-flight and --keyframe-interval must be 0 or more")
    if not args.reconnect_for > 0 or not args.connect_timeout > 0:
        parser.error("--reconnect-for and --connect-timeout take a number of seconds above 0")
    tasks = [TASKS.get(t.strip()) for t in args.tasks.split(",")]
    if not all(tasks):
        parser.error(f"--tasks takes {', '.join(TASKS)}")

    try:
        paths = list_frames(args.folder)
    except OSError as e:
        print(f"error: cannot read {args.folder}: {e.strerror or e}", file=sys.stderr)
        return 1
    if not paths:
        print(f"error: no frames in {args.folder}", file=sys.stderr)
        return 1
    frames = [(i + 1, p) for i, p in enumerate(paths)]  # frame ids 1..N
    names = {i: p.name for i, p in frames}
    print(f"streaming {len(frames)} frames from {args.folder} to {args.server} "
          f"(policy {args.policy}, in-flight {args.in_flight or 'server default'}, tasks {args.tasks}, "
          f"{'complete results' if args.no_delta else 'deltas'})")

    options = dict(policy=POLICIES[args.policy], max_in_flight=args.in_flight, tasks=tasks, reconnect_for=args.reconnect_for,
                   model=args.model, reconnect=lambda: open_channel(args.server))
    check = None
    try:
        with connect(args.server, args.connect_timeout, args.wait_for_server) as channel:
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

    if summary.reconnects:
        print(summary.reconnect_line())
    for problem in summary.problems:
        print(f"error: {problem}", file=sys.stderr)
    for difference in check.differences if check else []:
        print(f"error: rebuilt {difference}", file=sys.stderr)
    for line in check.lines() if check else []:
        print(line)
    print(summary.line())
    return 0 if summary.ok and (check is None or check.passed) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl+C: the exit status a shell gives a command ended by SIGINT, without a traceback (as Node and Go).
        sys.exit(130)

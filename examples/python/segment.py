#!/usr/bin/python3
"""Segments one image with a unary Segment call (semantic + panoptic) and prints the result.

    /usr/bin/python3 segment.py IMAGE [--server host:port] [--model NAME] [--deadline SECONDS]
                                      [--connect-timeout SECONDS] [--wait-for-server]

The server address defaults to $MASKFORMER_ADDRESS, else 127.0.0.1:5081; --model names the model (default:
the server's default model). A failed connection (nothing listening, a failed TLS handshake) ends the command
at once, exit 2, unless --wait-for-server: then it is tried again until --connect-timeout (default 15 s). An
UNAVAILABLE the server sends (its models are still loading; it is draining) is retried after its RetryInfo
delay, or 0.25 s doubling to 4 s, within the call's deadline (--deadline, default 30 s); one gRPC made itself
(the connection dropped) fails at once.
"""

import argparse
import sys
from pathlib import Path

import grpc

from common import DEFAULT_SERVER, call_with_retries, connect, connection_arguments, load_stubs, tls_problem

pb, pb_grpc = load_stubs()

DEADLINE_S = 30.0


def segment(stub, image_bytes, frame_id=1, model="", deadline=DEADLINE_S):
    """Sends one encoded image to model (empty: the server's default) and returns the SegmentResponse; an
    UNAVAILABLE from the server, and a RESOURCE_EXHAUSTED with RetryInfo, are retried within deadline seconds,
    every attempt included (common.call_with_retries)."""
    request = pb.SegmentRequest(
        image=pb.Image(encoded=image_bytes),
        tasks=[pb.SEGMENTATION_TASK_SEMANTIC, pb.SEGMENTATION_TASK_PANOPTIC],
        frame_id=frame_id,
        model=model,
    )
    return call_with_retries(stub.Segment, request, deadline)


def print_response(r, out=sys.stdout):
    """Prints a SegmentResponse in a human-readable form."""
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"model:   {r.model} (version {r.model_version or '-'}) on {r.device or '?'}")
    p(f"size:    {r.width}x{r.height}")
    if r.HasField("semantic"):
        lm = r.semantic.label_map
        p(f"semantic label map: {lm.width}x{lm.height}, {lm.bits_per_pixel}-bit, "
          f"{pb.LabelMapEncoding.Name(lm.encoding)}, {len(lm.data)} bytes")
        p("classes:")
        total = r.width * r.height or 1
        for c in r.semantic.classes:
            p(f"  {c.label_id:3d} {c.label_name:<16} {c.area:8d} px  {100.0 * c.area / total:5.1f}%")
    if r.HasField("panoptic"):
        p(f"panoptic segments ({len(r.panoptic.segments)}):")
        for s in r.panoptic.segments:
            b = s.bbox
            p(f"  id {s.id:3d} {s.label_name:<16} {'thing' if s.is_thing else 'stuff'}  "
              f"score {s.score:.3f}  area {s.area:6d}  bbox [{b.x}, {b.y}, {b.width}, {b.height}]")
    t = r.timings
    p(f"timings (ms): decode {t.decode_ms:.2f}, preprocess {t.preprocess_ms:.2f}, queue {t.queue_ms:.2f}, "
      f"inference {t.inference_ms:.2f} (batch {t.batch_size}), postprocess {t.postprocess_ms:.2f}, "
      f"encode {t.encode_ms:.2f}, total {t.total_ms:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="an encoded image (PNG, JPEG, ...)")
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help="host:port or http(s)://host[:port], https:// for TLS; a URL without a port takes its "
                             f"scheme's (80, 443), an IPv6 host goes in brackets ([::1]:5081) (default {DEFAULT_SERVER})")
    parser.add_argument("--model", default="", metavar="NAME", help="the model to use (default: the server's default model)")
    parser.add_argument("--deadline", type=float, default=DEADLINE_S, metavar="SECONDS",
                        help=f"the call's deadline, every retried attempt included (default {DEADLINE_S:g})")
    connection_arguments(parser)
    args = parser.parse_args(argv)
    if not args.deadline > 0:
        parser.error("--deadline takes a number of seconds above 0")
    if not args.connect_timeout > 0:
        parser.error("--connect-timeout takes a number of seconds above 0")
    if problem := tls_problem(args.server):
        print(f"error: {problem}", file=sys.stderr)
        return 2

    try:
        image_bytes = args.image.read_bytes()
    except OSError as e:
        print(f"error: cannot read {args.image}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        with connect(args.server, args.connect_timeout, args.wait_for_server) as channel:
            response = segment(pb_grpc.SegmentationServiceStub(channel), image_bytes, model=args.model, deadline=args.deadline)
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        print(f"error: Segment failed with {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    print(f"image:   {args.image}")
    print_response(response)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl+C: the exit status a shell gives a command ended by SIGINT, without a traceback (as Node and Go).
        sys.exit(130)

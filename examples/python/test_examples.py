"""Checks the Python examples against a running MaskFormer Serve server.

    MASKFORMER_ADDRESS=127.0.0.1:5081 /usr/bin/python3 -m unittest -v test_examples

Plain unittest (no pytest). Without MASKFORMER_ADDRESS, or when the server cannot be reached, every
test fails; none is skipped. The server's default model must be the tiny-shapes model.
"""

import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HELDOUT_IMAGE = REPO / "models" / "tiny-shapes" / "heldout" / "0000.png"
CLIP = REPO / "models" / "tiny-shapes" / "clip"
SCRIPT_TIMEOUT_S = 300

sys.path.insert(0, str(HERE))
import common  # noqa: E402
from common import TLS_VARIABLES, connect, decode_grey_png, list_frames, load_stubs, png_size  # noqa: E402

pb, pb_grpc = load_stubs()
import segment  # noqa: E402
import stream  # noqa: E402


def address():
    value = os.environ.get("MASKFORMER_ADDRESS")
    if not value:
        raise AssertionError(
            "MASKFORMER_ADDRESS is not set: start the server and run e.g. "
            "`MASKFORMER_ADDRESS=127.0.0.1:5081 /usr/bin/python3 -m unittest -v test_examples`")
    return value


class _ServerTest(unittest.TestCase):
    channel = None

    @classmethod
    def stub(cls):
        if cls.channel is None:
            cls.channel = connect(address())  # raises (and so fails the test) when unreachable
        return pb_grpc.SegmentationServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        if cls.channel is not None:
            cls.channel.close()
            cls.channel = None

    def run_script(self, *args):
        return run_script(*args, server=address())


def run_script(*args, server, token=None, tls=None):
    """Runs an example script against server; MASKFORMER_TOKEN is the given token, or unset, and the TLS
    variables those in the tls dict, the others unset."""
    return subprocess.run(
        ["/usr/bin/python3", *map(str, args), "--server", server],
        cwd=HERE, env=script_environment(token, tls), capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)


def start_script(test, *args, server):
    """Starts an example script against server, as run_script runs it, without waiting for it; killed when test
    ends."""
    proc = subprocess.Popen(["/usr/bin/python3", *map(str, args), "--server", server], cwd=HERE,
                            env=script_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    test.addCleanup(stop)
    return proc


def script_environment(token=None, tls=None):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for name in ("MASKFORMER_TOKEN", *TLS_VARIABLES):
        env.pop(name, None)
    if token is not None:
        env["MASKFORMER_TOKEN"] = token
    env.update(tls or {})
    return env


class SegmentTest(_ServerTest):
    def test_unary_semantic_label_map_has_image_size(self):
        image = HELDOUT_IMAGE.read_bytes()
        width, height = png_size(image)
        r = segment.segment(self.stub(), image, frame_id=42)

        self.assertEqual(r.frame_id, 42, "frame_id is echoed")
        self.assertTrue(r.model, "response names no model")
        self.assertEqual((r.width, r.height), (width, height), "response size")
        self.assertTrue(r.HasField("semantic"), "semantic result missing")
        lm = r.semantic.label_map
        self.assertEqual((lm.width, lm.height), (width, height), "label_map size")
        self.assertEqual(lm.encoding, pb.LABEL_MAP_ENCODING_PNG, "label_map encoding")
        self.assertEqual(lm.bits_per_pixel, 8, "label_map bits_per_pixel")
        w, h, pixels = decode_grey_png(lm.data)
        self.assertEqual((w, h), (width, height), "label map PNG size")
        self.assertEqual(len(pixels), width * height)
        # The classes listed are exactly those in the map, with their pixel counts.
        counts = {}
        for v in pixels:
            counts[v] = counts.get(v, 0) + 1
        self.assertEqual({c.label_id: c.area for c in r.semantic.classes}, counts, "semantic.classes areas")
        self.assertTrue(r.HasField("panoptic"), "panoptic result missing")
        self.assertGreater(len(r.panoptic.segments), 0, "no panoptic segments")
        for s in r.panoptic.segments:
            self.assertEqual(s.track_id, 0, "track_id is 0 on unary calls")
        self.assertGreater(r.timings.total_ms, 0, "timings.total_ms")

    def test_segment_script(self):
        proc = self.run_script("segment.py", HELDOUT_IMAGE)
        self.assertEqual(proc.returncode, 0, f"segment.py failed:\n{proc.stdout}\n{proc.stderr}")
        width, height = png_size(HELDOUT_IMAGE.read_bytes())
        self.assertIn(f"size:    {width}x{height}", proc.stdout)
        self.assertIn("classes:", proc.stdout)
        self.assertIn("panoptic segments", proc.stdout)
        self.assertIn("timings (ms):", proc.stdout)


class MissingImageTest(_ServerTest):
    def test_segment_script_missing_image_exits_2_naming_it(self):
        proc = self.run_script("segment.py", "no-such-image.png")
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("cannot read no-such-image.png", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)


class ModelAndDeadlineTest(_ServerTest):
    def test_segment_model_by_name_is_answered_by_it(self):
        proc = self.run_script("segment.py", HELDOUT_IMAGE, "--model", "tiny-shapes", "--deadline", "60")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("model:   tiny-shapes ", proc.stdout)

    def test_segment_unknown_model_is_not_found_exit_1(self):
        proc = self.run_script("segment.py", HELDOUT_IMAGE, "--model", "no-such-model")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("error: Segment failed with NOT_FOUND: Model 'no-such-model' is not served.", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)

    def test_stream_unknown_model_every_frame_not_found_no_check_exit_1(self):
        proc = self.run_script("stream.py", CLIP, "--model", "no-such-model")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        lines = proc.stdout.strip().splitlines()
        self.assertEqual(sum("ERROR NOT_FOUND: Model 'no-such-model' is not served." in line for line in lines), 16, proc.stdout)
        self.assertNotIn("check:", proc.stdout, "a stream with no result has nothing to check")
        self.assertEqual(lines[-1], "sent 16, results 0, errors 16, skipped 0", proc.stdout)

    def test_segment_tiny_deadline_is_deadline_exceeded_exit_1(self):
        proc = self.run_script("segment.py", HELDOUT_IMAGE, "--deadline", "0.001")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("error: Segment failed with DEADLINE_EXCEEDED", proc.stderr)


class ConnectFailureTest(_ServerTest):
    """A connection that fails ends the command at once (exit 2), naming the address, unless --wait-for-server."""

    # A failure "at once" is timed against a connect timeout far longer than the bound: a command that waited
    # for the timeout instead would take 60 s, while a loaded machine may take seconds to start Python and grpc.
    AT_ONCE_CONNECT_TIMEOUT_S = 60
    AT_ONCE_S = 20

    def timed(self, *args, server):
        started = time.monotonic()
        proc = run_script(*args, server=server)
        return proc, time.monotonic() - started

    def timed_at_once(self, *args, server):
        return self.timed(*args, "--connect-timeout", str(self.AT_ONCE_CONNECT_TIMEOUT_S), server=server)

    def test_nothing_listening_fails_at_once_naming_the_address(self):
        server = f"127.0.0.1:{free_port()}"
        for args in (("segment.py", HELDOUT_IMAGE), ("stream.py", CLIP)):
            proc, elapsed = self.timed_at_once(*args, server=server)
            self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
            self.assertIn(f"cannot reach the MaskFormer server at {server}: ", proc.stderr)
            self.assertIn("Connection refused", proc.stderr)
            self.assertLess(elapsed, self.AT_ONCE_S, f"{args[0]} took {elapsed:.1f} s to fail")

    def test_tls_to_a_cleartext_server_fails_at_once_saying_it_speaks_cleartext(self):
        server = "https://" + common.host_port(address())
        for args in (("segment.py", HELDOUT_IMAGE), ("stream.py", CLIP)):
            proc, elapsed = self.timed_at_once(*args, server=server)
            self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
            self.assertIn(f"cannot reach the MaskFormer server at {server}: ", proc.stderr)
            self.assertIn("the server there seems to speak cleartext, it answered a TLS handshake with something else: "
                          f"use http://{common.host_port(address())})", proc.stderr)
            self.assertLess(elapsed, self.AT_ONCE_S, f"{args[0]} took {elapsed:.1f} s to fail")

    def test_wait_for_server_ends_at_once_on_tls_to_a_cleartext_server(self):
        # Waiting cannot change the server's scheme: the same error and hint as without --wait-for-server.
        server = "https://" + common.host_port(address())
        proc, elapsed = self.timed_at_once("segment.py", HELDOUT_IMAGE, "--wait-for-server", server=server)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn(f"cannot reach the MaskFormer server at {server}: ", proc.stderr)
        self.assertIn(f"the server there seems to speak cleartext, it answered a TLS handshake with something else: "
                      f"use http://{common.host_port(address())})", proc.stderr)
        self.assertLess(elapsed, self.AT_ONCE_S, f"took {elapsed:.1f} s to fail")

    def test_wait_for_server_tries_again_until_the_connect_timeout(self):
        server = f"127.0.0.1:{free_port()}"
        proc, elapsed = self.timed("segment.py", HELDOUT_IMAGE, "--wait-for-server", "--connect-timeout", "2", server=server)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn(f"cannot reach the MaskFormer server at {server} within 2 s", proc.stderr)
        self.assertGreater(elapsed, 1.9)
        self.assertLess(elapsed, 12, "not under the default connect timeout (15 s), with room for a loaded machine")


class AddressTest(unittest.TestCase):
    """--server and MASKFORMER_ADDRESS: host:port, or a URL whose port may be left to its scheme; a host without a
    port, no host, a port not from 1 to 65535, a path or a scheme other than http(s) is refused before anything is
    tried, in the words every client here uses."""

    NO_PORT = ("--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {} has no port "
               "(the service listens on 5081 unless told otherwise)")

    def test_a_url_without_a_port_takes_its_schemes(self):
        self.assertEqual(common.host_port("http://segment.example"), "segment.example:80")
        self.assertEqual(common.host_port("https://segment.example/"), "segment.example:443")
        self.assertEqual(common.host_port("https://segment.example:8443"), "segment.example:8443")
        self.assertEqual(common.host_port("http://[::1]"), "[::1]:80")
        self.assertEqual(common.host_port("[::1]:5081"), "[::1]:5081")
        self.assertEqual(common.host_port("127.0.0.1:5081"), "127.0.0.1:5081")

    def test_a_host_without_a_port_exits_2_at_once_saying_so(self):
        # Waiting for a server for 60 s: a command that tried the host at some port would take that long.
        for server in ("127.0.0.1", "[::1]", "::1", "localhost"):
            for args in (("segment.py", HELDOUT_IMAGE), ("stream.py", CLIP)):
                with self.subTest(server=server, script=args[0]):
                    self.assert_refused_at_once(args, server, self.NO_PORT.format(server))

    BAD_PORT = ("--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {} has port "
                '"{}", which is not a number from 1 to 65535')

    def test_a_port_not_from_1_to_65535_is_refused_saying_so(self):
        for address, port in (("127.0.0.1:", ""), ("127.0.0.1:abc", "abc"), ("127.0.0.1:0", "0"),
                              ("127.0.0.1:70000", "70000"), ("127.0.0.1:-1", "-1"), ("[::1]:", ""), ("[::1]:abc", "abc"),
                              ("http://127.0.0.1:", ""), ("http://127.0.0.1:abc", "abc"), ("http://127.0.0.1:0", "0"),
                              ("https://127.0.0.1:70000/", "70000"), ("https://[::1]:0", "0")):
            with self.subTest(address):
                with self.assertRaises(ValueError) as caught:
                    common.host_port(address)
                self.assertEqual(str(caught.exception), self.BAD_PORT.format(address, port))
        self.assertEqual(common.host_port("127.0.0.1:1"), "127.0.0.1:1")
        self.assertEqual(common.host_port("https://[::1]:65535/"), "[::1]:65535")

    def test_a_port_not_from_1_to_65535_exits_2_at_once_saying_so(self):
        # Waiting for a server for 60 s: a command that tried the address would take that long.
        for args, server, port in ((("segment.py", HELDOUT_IMAGE), "127.0.0.1:", ""),
                                   (("segment.py", HELDOUT_IMAGE), "127.0.0.1:0", "0"),
                                   (("stream.py", CLIP), "http://127.0.0.1:abc", "abc")):
            with self.subTest(server=server, script=args[0]):
                self.assert_refused_at_once(args, server, self.BAD_PORT.format(server, port))

    PROBLEMS = (("http://127.0.0.1:5081/api", 'has path "/api", which a gRPC address cannot have'),
                ("127.0.0.1:5081/x", 'has path "/x", which a gRPC address cannot have'),
                ("https://[::1]:5081/a/b/", 'has path "/a/b", which a gRPC address cannot have'),
                ("http://segment.example/api", 'has path "/api", which a gRPC address cannot have'),
                ("ftp://127.0.0.1:5081", 'has scheme "ftp", which is not http or https'),
                ("grpc://127.0.0.1:5081", 'has scheme "grpc", which is not http or https'),
                ("unix:///tmp/maskformer.sock", 'has scheme "unix", which is not http or https'),
                ("HTTP://127.0.0.1:5081", 'has scheme "HTTP", which is not http or https'),
                (":5081", "has no host"), ("http://:5081", "has no host"), ("[]:5081", "has no host"),
                ("http://", "has no host"),
                ("http://::1:5081", 'has host "::1:5081": an IPv6 host goes in brackets ([::1]:5081)'),
                ("https://::1", 'has host "::1": an IPv6 host goes in brackets ([::1]:5081)'),
                ("http://fe80::1/", 'has host "fe80::1": an IPv6 host goes in brackets ([::1]:5081)'),
                ("http://[::1", 'has host "[::1": an IPv6 host goes in brackets ([::1]:5081)'))

    def test_a_path_another_scheme_or_no_host_is_refused_saying_so(self):
        for address, problem in self.PROBLEMS:
            with self.subTest(address):
                with self.assertRaises(ValueError) as caught:
                    common.host_port(address)
                self.assertEqual(str(caught.exception),
                                 f"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {address} {problem}")

    def test_a_path_another_scheme_or_no_host_exits_2_at_once_saying_so(self):
        # Waiting for a server for 60 s: a command that tried the address would take that long.
        for args, server, problem in ((("segment.py", HELDOUT_IMAGE), "http://127.0.0.1:5081/api",
                                       'has path "/api", which a gRPC address cannot have'),
                                      (("stream.py", CLIP), "grpc://127.0.0.1:5081", 'has scheme "grpc", which is not http or https'),
                                      (("segment.py", HELDOUT_IMAGE), ":5081", "has no host")):
            with self.subTest(server=server, script=args[0]):
                self.assert_refused_at_once(
                    args, server, f"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {server} {problem}")

    def assert_refused_at_once(self, args, server, message):
        """Runs a script with --server SERVER, waiting for a server for 60 s, and checks it exits 2 with MESSAGE
        well before that."""
        started = time.monotonic()
        proc = run_script(*args, "--wait-for-server", "--connect-timeout",
                          str(ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S), server=server)
        elapsed = time.monotonic() - started
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertEqual(proc.stderr.strip(), "error: " + message)
        self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"took {elapsed:.1f} s to fail")

    def test_an_ipv6_address_in_brackets_reaches_its_server(self):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_SegmentationServiceServicer_to_server(pb_grpc.SegmentationServiceServicer(), server)
        port = server.add_insecure_port("[::1]:0")
        server.start()
        self.addCleanup(server.stop, None)
        for address in (f"[::1]:{port}", f"http://[::1]:{port}"):
            with self.subTest(address), connect(address, timeout=ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S) as channel:
                with self.assertRaises(grpc.RpcError) as caught:
                    pb_grpc.SegmentationServiceStub(channel).ListModels(pb.ListModelsRequest(), timeout=20)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNIMPLEMENTED, "the server's own answer")


class StreamTest(_ServerTest):
    def test_stream_answers_every_frame_in_order_with_tracks(self):
        paths = list_frames(CLIP)
        self.assertEqual(len(paths), 16, f"expected the 16 clip frames, got {[p.name for p in paths]}")
        frames = [(100 + i, p) for i, p in enumerate(paths)]
        summary = stream.stream_frames(self.stub(), frames, pb.OVERLOAD_POLICY_QUEUE)

        self.assertEqual(summary.problems, [], "stream contract violations")
        self.assertEqual([r.frame_id for r in summary.responses], [fid for fid, _ in frames],
                         "one response per frame, in frame order")
        outcomes = [r.WhichOneof("outcome") for r in summary.responses]
        self.assertEqual(outcomes, ["result"] * len(frames),
                         "every frame has a result under OVERLOAD_POLICY_QUEUE: "
                         + "; ".join(stream.describe(r) for r in summary.responses if r.WhichOneof("outcome") != "result"))
        things = 0
        for r in summary.responses:
            res = r.result
            self.assertEqual(r.frame_id, res.frame_id, "result.frame_id matches the response's")
            self.assertTrue(res.HasField("panoptic"), f"frame {r.frame_id}: panoptic result missing")
            for s in res.panoptic.segments:
                if s.is_thing:
                    things += 1
                    self.assertNotEqual(s.track_id, 0, f"frame {r.frame_id}: thing segment {s.id} "
                                        f"({s.label_name}) has track_id 0")
        self.assertGreater(things, 0, "no thing segments in the whole clip")

    def test_stream_with_statuses_answers_every_frame_in_order(self):
        frames = [(300 + i, p) for i, p in enumerate(list_frames(CLIP))]
        summary = stream.stream_frames(self.stub(), frames, pb.OVERLOAD_POLICY_QUEUE, status_interval_ms=20)

        self.assertEqual(summary.problems, [], "StreamStatus messages taken for answers")
        self.assertEqual(summary.results, len(frames))
        self.assertGreaterEqual(summary.statuses, 1, "no StreamStatus (the final one comes when an interval is set)")

    def test_stream_frame_file_unreadable_reported_by_name_and_earlier_frames_answered(self):
        with tempfile.TemporaryDirectory() as folder:
            good = Path(folder) / "a.png"
            good.write_bytes(HELDOUT_IMAGE.read_bytes())
            missing = Path(folder) / "b.png"  # listed, then gone before it is read
            summary = stream.stream_frames(self.stub(), [(1, good), (2, missing), (3, good)])

        self.assertEqual(summary.results, 1, "the frame before the unreadable one is answered")
        self.assertEqual(len(summary.problems), 1, summary.problems)
        self.assertIn("b.png", summary.problems[0])

    def test_stream_script_refuses_a_broken_symlink_naming_it_before_sending(self):
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(HELDOUT_IMAGE, Path(folder) / "a.png")
            shutil.copy(HELDOUT_IMAGE, Path(folder) / "c.png")
            (Path(folder) / "b.png").symlink_to(Path(folder) / "missing.png")
            proc = self.run_script("stream.py", folder)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn(f"b.png is a broken symbolic link (to {folder}/missing.png)", proc.stderr)
        self.assertNotIn("streaming", proc.stdout, "nothing is sent")
        self.assertNotIn("Traceback", proc.stderr)

    def test_delta_results_rebuild_to_exactly_the_complete_answers(self):
        paths = list_frames(CLIP)
        # Frame 5 twice in a row: the second is unchanged, so its maps are deltas without patches.
        sequence = paths[:6] + [paths[5]] + paths[6:]
        frames = [(200 + i, p) for i, p in enumerate(sequence)]
        summary, rebuilder, check = stream.stream_with_deltas(
            self.stub(), frames, policy=pb.OVERLOAD_POLICY_QUEUE, max_in_flight=4, tasks=list(stream.TASKS.values()))

        self.assertEqual(summary.problems, [], "stream contract violations")
        self.assertEqual(summary.results, len(frames), "every frame has a result under OVERLOAD_POLICY_QUEUE")
        self.assertEqual(check.differences, [], "rebuilt frames that differ from the complete answers")
        self.assertEqual((check.compared, check.equal), (len(frames), len(frames)), "every rebuilt frame compared and equal")
        self.assertGreaterEqual(rebuilder.deltas, len(frames) // 2, "results that were deltas")
        first = summary.responses[0].result
        self.assertTrue(first.semantic.HasField("label_map") and first.panoptic.segment_id_png, "the first result is complete")
        repeated = summary.responses[6].result
        self.assertTrue(repeated.semantic.HasField("label_map_delta"), "a repeated frame: semantic delta")
        self.assertEqual(len(repeated.semantic.label_map_delta.patches), 0, "a repeated frame: semantic map unchanged")
        self.assertTrue(repeated.panoptic.HasField("segment_id_delta"), "a repeated frame: panoptic delta")
        self.assertEqual(len(repeated.panoptic.segment_id_delta.patches), 0, "a repeated frame: panoptic map unchanged")
        self.assertTrue(any(i.mask_unchanged for i in repeated.instance.instances), "a repeated frame: masks by track id")
        self.assertLess(check.delta_bytes, check.complete_bytes)

    def test_stream_script(self):
        proc = self.run_script("stream.py", CLIP, "--policy", "queue", "--in-flight", "2")
        self.assertEqual(proc.returncode, 0, f"stream.py failed:\n{proc.stdout}\n{proc.stderr}")
        lines = proc.stdout.strip().splitlines()
        self.assertIn("check: 16 of 16 rebuilt frames equal the complete answers", lines, proc.stdout)
        self.assertRegex(proc.stdout, r"(?m)^bytes: [\d,]+ with deltas, [\d,]+ without \([\d.]+ % saved\)$")
        self.assertEqual(lines[-1], "sent 16, results 16, errors 0, skipped 0", proc.stdout)

    def test_stream_script_without_deltas(self):
        proc = self.run_script("stream.py", CLIP, "--no-delta", "--tasks", "semantic,panoptic")
        self.assertEqual(proc.returncode, 0, f"stream.py failed:\n{proc.stdout}\n{proc.stderr}")
        self.assertNotIn("check:", proc.stdout)
        self.assertEqual(proc.stdout.strip().splitlines()[-1], "sent 16, results 16, errors 0, skipped 0", proc.stdout)


class InterruptTest(_ServerTest):
    def test_ctrl_c_ends_a_stream_with_130_and_no_traceback(self):
        # The clip eight times over, so the stream is still running when SIGINT comes after its first answer.
        folder = Path(tempfile.mkdtemp(prefix="maskformer-ctrl-c-"))
        self.addCleanup(shutil.rmtree, folder)
        for i in range(8):
            for path in list_frames(CLIP):
                (folder / f"{i}_{path.name}").symlink_to(path)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        process = subprocess.Popen(["/usr/bin/python3", "stream.py", str(folder), "--server", address()],
                                   cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(process.kill)
        first = process.stdout.readline()
        self.assertTrue(first, "the stream printed nothing")
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=SCRIPT_TIMEOUT_S)

        self.assertEqual(process.returncode, 130, errors)
        self.assertNotIn("Traceback", errors)


class AnswerTimeoutTest(_ServerTest):
    def test_stream_paced_longer_than_the_answer_timeout_answers_every_frame(self):
        # A camera's frames, one every 0.5 s: the stream outlives the answer timeout, each frame does not.
        image = HELDOUT_IMAGE.read_bytes()

        def camera():
            for frame_id in range(1, 9):
                if frame_id > 1:
                    time.sleep(0.5)
                yield frame_id, image

        summary = stream.stream_frames(self.stub(), camera(), answer_timeout=2.0)

        self.assertEqual(summary.problems, [])
        self.assertEqual(summary.results, 8, summary.line())

    def test_stream_with_deltas_from_a_camera_checks_every_frame(self):
        # The check streams the frames again: a generator's are kept as the first stream takes them.
        image = HELDOUT_IMAGE.read_bytes()
        camera = ((frame_id, image) for frame_id in range(1, 5))

        summary, _, check = stream.stream_with_deltas(self.stub(), camera)

        self.assertEqual(summary.problems, [])
        self.assertTrue(check.passed, check.lines())
        self.assertEqual(check.compared, 4)

    @staticmethod
    def silent_server():
        """A server that reads every frame and answers none: a fault the real server cannot be made to show."""
        class Silent(pb_grpc.SegmentationServiceServicer):
            def SegmentStream(self, request_iterator, context):
                for _ in request_iterator:
                    pass
                ended = threading.Event()
                context.add_callback(ended.set)
                ended.wait(60)
                return iter(())

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_SegmentationServiceServicer_to_server(Silent(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return server, port

    def test_stream_with_deltas_cancelled_for_want_of_answers_makes_no_check_stream(self):
        # The delta stream has failed already: a check stream would only wait out the timeout again.
        server, port = self.silent_server()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                summary, _, check = stream.stream_with_deltas(pb_grpc.SegmentationServiceStub(channel),
                                                              [(1, HELDOUT_IMAGE.read_bytes())], answer_timeout=1.0)
        finally:
            server.stop(None)

        self.assertIn("no answer for 1 s while 1 frame(s) waited: stream cancelled", summary.problems)
        self.assertIsNone(check, "a check stream ran after the delta stream was cancelled")

    def test_stream_server_that_stops_answering_cancelled_after_the_answer_timeout(self):
        server, port = self.silent_server()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                started = time.monotonic()
                summary = stream.stream_frames(pb_grpc.SegmentationServiceStub(channel),
                                               [(1, HELDOUT_IMAGE.read_bytes())], answer_timeout=1.0)
                elapsed = time.monotonic() - started
        finally:
            server.stop(None)

        self.assertIn("no answer for 1 s while 1 frame(s) waited: stream cancelled", summary.problems)
        self.assertLess(elapsed, 30, "the stream was not cancelled soon after the answer timeout")


# The servers the reconnect tests start and stop themselves (tools/test-all.sh sets both; the defaults are the
# repository's Release build and models).
SERVER_DLL = Path(os.environ.get("MASKFORMER_SERVER_DLL")
                  or REPO / "src" / "MaskFormer.Server" / "bin" / "Release" / "net10.0" / "MaskFormer.Server.dll")
MODELS = Path(os.environ.get("MASKFORMER_MODELS") or REPO / "models")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server of the test's own: `dotnet MASKFORMER_SERVER_DLL` on 127.0.0.1:port, its log in a temporary file."""

    def __init__(self, port, *settings):
        if not SERVER_DLL.is_file():
            raise AssertionError(f"no server at {SERVER_DLL}: build it (dotnet build -c Release) or set MASKFORMER_SERVER_DLL")
        self.port = port
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            ["dotnet", str(SERVER_DLL), f"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}",
             f"--MaskFormer:Models:Path={MODELS}", "--MaskFormer:Inference:WarmUp=false", *settings],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def wait_until_serving(self, timeout=90):
        # grpc.health.v1 Health/Check as bytes (Debian has no health stubs): service "" in, SERVING (1) out.
        # A channel of its own for each check: one channel polled from before the server listens waits out
        # gRPC's own backoff between connection attempts (1 s growing 1.6-fold; Debian's grpcio 1.51 did not
        # take shorter ones from the channel's options), and found a server listening after 1.5 s only after 15.
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            with grpc.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                try:
                    if channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=2) == b"\x08\x01":
                        return
                except grpc.RpcError:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server was not serving within {timeout} s:\n{self.output()}")
            time.sleep(0.2)

    def wait_until_listening(self, timeout=60):
        """Waits for Kestrel's "Now listening on:" line, not for the models: a call may still be refused."""
        deadline = time.monotonic() + timeout
        while "Now listening on:" not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the server was not listening within {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def wait_for_exit(self, timeout=30):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit within {timeout} s:\n{self.output()}") from None

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


class ReconnectTest(unittest.TestCase):
    """A stream across a server that goes away mid-stream (a real SIGTERM drain, or SIGKILL) and another started
    on its port, as a rollout replaces a pod: the client rule of docs/deploy.md ("Drain"). Mirrors the CLI's
    CliReconnectTests; these tests start their own servers and need no MASKFORMER_ADDRESS."""

    def setUp(self):
        self.gone = threading.Event()  # set once the server has been sent its signal

    def start_server(self, port, *settings):
        server = ServerProcess(port, *settings)
        self.addCleanup(server.stop)
        server.wait_until_serving()
        return server

    def stream_in_background(self, server, **options):
        """Streams the clip's 16 frames at 4 a second on a thread; returns (frame ids, answer times by frame id,
        outcome dict: summary and rebuilder, or error, once the thread ends, thread)."""
        channel = connect(server.address)
        self.addCleanup(channel.close)
        paths = sorted(CLIP.glob("frame_???.png"))  # the frames, not the ground truth beside them
        self.assertEqual(len(paths), 16)
        answered_at, frames, outcome = {}, {}, {}

        def camera():
            for i, path in enumerate(paths):
                if i:
                    time.sleep(0.25)
                if i == 4:
                    # The frames after the fourth come once the server is gone: on a slow machine they would
                    # all be in the first server's hands before it goes, and its drain would answer them all.
                    self.gone.wait(60)
                yield i + 1, path

        def on_frame(response, frame):
            answered_at[response.frame_id] = time.monotonic()
            frames[response.frame_id] = frame

        def run():
            try:
                outcome["summary"], outcome["rebuilder"], outcome["check"] = stream.stream_with_deltas(
                    pb_grpc.SegmentationServiceStub(channel), camera(), on_frame=on_frame,
                    reconnect=lambda: common.open_channel(server.address), **options)
            except Exception as e:  # noqa: BLE001 - the test reads it
                outcome["error"] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return [i + 1 for i in range(len(paths))], answered_at, frames, outcome, thread

    def wait_for_answers(self, answered_at, count, thread):
        deadline = time.monotonic() + 60
        while len(answered_at) < count:
            self.assertTrue(thread.is_alive(), "the stream ended before the server was replaced")
            self.assertLess(time.monotonic(), deadline, f"fewer than {count} answers within 60 s")
            time.sleep(0.05)

    def replace_server_mid_stream(self, sig):
        port = free_port()
        # Batches of 8 that 4 frames in flight never fill wait the full queue delay: frames are still in the
        # first server's engine when it goes.
        first = self.start_server(port, "--MaskFormer:Streaming:DrainTimeout=00:00:05",
                                  "--MaskFormer:Inference:MaxBatchSize=8", "--MaskFormer:Inference:MaxQueueDelay=00:00:01")
        ids, answered_at, frames, outcome, thread = self.stream_in_background(first)
        self.wait_for_answers(answered_at, 2, thread)
        first.process.send_signal(sig)
        self.gone.set()
        first.wait_for_exit(30)
        second = ServerProcess(port)
        self.addCleanup(second.stop)
        second_started = time.monotonic()
        thread.join(120)
        self.assertFalse(thread.is_alive(), "the stream did not finish within 120 s of the second server's start")
        self.assertNotIn("error", outcome, f"the stream failed: {outcome.get('error')!r}\n{second.output()}")
        summary = outcome["summary"]

        # Every frame answered once, in order, with a result (no errors, no skips), some of them by the second
        # server, and the client says it reconnected.
        self.assertEqual(summary.problems, [], "stream contract violations")
        self.assertEqual([r.frame_id for r in summary.responses], ids, "one answer per frame, in frame order")
        self.assertEqual([r.WhichOneof("outcome") for r in summary.responses], ["result"] * len(ids),
                         "; ".join(stream.describe(r) for r in summary.responses if r.WhichOneof("outcome") != "result"))
        self.assertEqual(summary.line(), "sent 16, results 16, errors 0, skipped 0")
        later = [i for i in ids if answered_at[i] > second_started]
        self.assertTrue(later, "every frame was answered before the second server started")
        self.assertGreater(summary.reconnects, 0)
        self.assertRegex(summary.reconnect_line(), r"^reconnected \d+ time\(s\) \(.+\); \d+ frame\(s\) sent again$")
        # With deltas: the new call's first result is complete and the rebuilder takes it as its new base.
        self.assertTrue(all(frames[i] is not None for i in ids), "a frame was not rebuilt")
        self.assertFalse(summary.responses[later[0] - 1].result.panoptic.HasField("segment_id_delta"),
                         "the first result on the second server is a delta")
        self.assertGreater(outcome["rebuilder"].deltas, 0, "no result was a delta")
        # The check against a stream without deltas is not made: the new call started its track ids again
        # (compared anyway, it failed the run on instances and panoptic segments).
        check = outcome["check"]
        self.assertTrue(check.passed, check.lines())
        self.assertTrue(check.not_comparable.startswith("a stream went on new calls"), check.not_comparable)
        return summary

    def test_stream_across_a_sigterm_drain_answers_every_frame_once(self):
        self.replace_server_mid_stream(signal.SIGTERM)

    def test_stream_across_a_killed_server_sends_again_the_frames_without_an_answer(self):
        summary = self.replace_server_mid_stream(signal.SIGKILL)
        # Frames in the killed server's engine got no answer: they went again to the second one.
        self.assertGreater(summary.sent_again, 0, summary.reconnect_line())

    def test_stream_with_no_frame_in_flight_half_closes_on_a_status_message_marked_draining(self):
        port = free_port()
        # A drain far longer than the test: while the stream is open the first server can end before it only
        # when the stream half-closes.
        first = self.start_server(port, "--MaskFormer:Streaming:DrainTimeout=00:03:00")
        paths = sorted(CLIP.glob("frame_???.png"))[:2]
        first_gone = threading.Event()
        self.addCleanup(first_gone.set)
        answered_at, outcome = {}, {}
        channel = connect(first.address)
        self.addCleanup(channel.close)

        def camera():
            # Frame 2 comes once the first server is gone: no answer between the two can say that it drains.
            yield 1, paths[0]
            first_gone.wait(180)
            yield 2, paths[1]

        def run():
            try:
                outcome["summary"] = stream.stream_frames(
                    pb_grpc.SegmentationServiceStub(channel), camera(),
                    on_response=lambda r: answered_at.setdefault(r.frame_id, time.monotonic()),
                    reconnect=lambda: common.open_channel(first.address))
            except Exception as e:  # noqa: BLE001 - the test reads it
                outcome["error"] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.wait_for_answers(answered_at, 1, thread)

        # The stream's status messages (one a second) say draining: it half-closes, its call ends OK and the
        # server exits, long before frame 2 would have told it.
        first.process.send_signal(signal.SIGTERM)
        first.wait_for_exit(20)
        first_gone.set()
        second = ServerProcess(port)
        self.addCleanup(second.stop)
        thread.join(150)
        self.assertFalse(thread.is_alive(), f"the stream did not finish within 150 s of the second server's start:\n{second.output()}")
        self.assertNotIn("error", outcome, f"the stream failed: {outcome.get('error')!r}\n{second.output()}")
        summary = outcome["summary"]
        self.assertEqual(summary.problems, [], "stream contract violations")
        self.assertEqual([r.frame_id for r in summary.responses], [1, 2], "one answer per frame, in frame order")
        self.assertEqual([r.WhichOneof("outcome") for r in summary.responses], ["result"] * 2,
                         "; ".join(stream.describe(r) for r in summary.responses))
        self.assertEqual(summary.line(), "sent 2, results 2, errors 0, skipped 0")
        self.assertGreater(summary.statuses, 0, "no status message came")
        self.assertGreater(summary.reconnects, 0, "frame 2 came on the first call")

    def test_stream_gives_up_after_reconnect_for_when_no_server_comes_back(self):
        server = self.start_server(free_port())
        _, answered_at, _, outcome, thread = self.stream_in_background(server, reconnect_for=3)
        self.wait_for_answers(answered_at, 2, thread)
        server.process.send_signal(signal.SIGKILL)
        self.gone.set()
        started = time.monotonic()
        thread.join(60)
        elapsed = time.monotonic() - started
        self.assertFalse(thread.is_alive(), "the stream still reconnects 60 s after the server was killed")
        error = outcome.get("error")
        self.assertIsInstance(error, grpc.RpcError, f"the stream did not fail: {outcome}")
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error.details())
        self.assertIn("gave up", error.details())
        self.assertGreater(elapsed, 1, "gave up before reconnect_for")
        self.assertLess(elapsed, 30, "gave up long after reconnect_for")


    def test_segment_while_the_models_load_is_retried_until_answered(self):
        # The server listens before its models are loaded and warm: a call in between is answered UNAVAILABLE,
        # "The models are still loading; retry shortly.", which segment.py retries within its deadline.
        server = ServerProcess(free_port(), "--MaskFormer:Inference:WarmUp=true")
        self.addCleanup(server.stop)
        server.wait_until_listening()
        result = run_script("segment.py", HELDOUT_IMAGE, server=server.address)
        output = server.output()
        self.assertEqual(result.returncode, 0, f"{result.stderr}\n{output}")
        self.assertIn("semantic label map:", result.stdout)
        # What this test is about: the first call was turned away while loading, and a later one answered.
        self.assertIn("SegmentationService/Segment Unavailable", output, "no call was refused while loading")
        self.assertIn("SegmentationService/Segment OK", output)

    def test_wait_for_server_finds_a_server_started_after_it_and_ends_once_its_scheme_differs(self):
        # Two clients wait for a server not started yet: the cleartext one is answered once it is up; the one
        # with https:// ends when an attempt finds it speaks cleartext, not at --connect-timeout.
        port = free_port()
        waiting = ("segment.py", HELDOUT_IMAGE, "--wait-for-server", "--connect-timeout", "60")
        cleartext = start_script(self, *waiting, server=f"127.0.0.1:{port}")
        tls = start_script(self, *waiting, server=f"https://127.0.0.1:{port}")
        server = ServerProcess(port)
        self.addCleanup(server.stop)
        server.wait_until_listening()
        listening = time.monotonic()
        self.assertIsNone(tls.poll(), "the https:// client ended before the server listened")
        stdout, stderr = tls.communicate(timeout=SCRIPT_TIMEOUT_S)
        elapsed = time.monotonic() - listening
        self.assertEqual(tls.returncode, 2, stdout + stderr)
        self.assertIn(f"the server there seems to speak cleartext, it answered a TLS handshake with something else: "
                      f"use http://127.0.0.1:{port})", stderr)
        self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"took {elapsed:.1f} s to fail once the server listened")
        stdout, stderr = cleartext.communicate(timeout=SCRIPT_TIMEOUT_S)
        self.assertEqual(cleartext.returncode, 0, stdout + stderr)
        self.assertIn("classes:", stdout)

    def test_segment_without_a_server_fails_at_once(self):
        # An UNAVAILABLE gRPC made itself (nothing listens) is not the server's word: not retried.
        with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
            started = time.monotonic()
            with self.assertRaises(grpc.RpcError) as caught:
                segment.segment(pb_grpc.SegmentationServiceStub(channel), HELDOUT_IMAGE.read_bytes())
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertLess(time.monotonic() - started, 2, caught.exception.details())


def start_fake(test, servicer):
    """servicer served in this process until test ends: its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_SegmentationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    test.addCleanup(server.stop, None)
    return f"127.0.0.1:{port}"


def serve_fake(test, servicer):
    """A stub for servicer, served in this process until test ends."""
    channel = grpc.insecure_channel(start_fake(test, servicer))
    test.addCleanup(channel.close)
    return pb_grpc.SegmentationServiceStub(channel)


class ResumingStreamTest(unittest.TestCase):
    """stream_frames' reconnecting against an in-process server of the test's own, for faults the real server
    cannot be made to show when wanted; needs no MASKFORMER_ADDRESS."""

    def serve(self, segment_stream):
        """A stub for a server whose SegmentStream is segment_stream(call number from 1, request_iterator, context)."""
        calls = []

        class Servicer(pb_grpc.SegmentationServiceServicer):
            def SegmentStream(self, request_iterator, context):
                calls.append(len(calls) + 1)
                return segment_stream(len(calls), request_iterator, context)

        return serve_fake(self, Servicer()), calls

    @staticmethod
    def answer(request):
        return pb.SegmentStreamResponse(frame_id=request.frame.frame_id, result=pb.SegmentResponse())

    def test_every_frame_answered_then_unavailable_is_success(self):
        # The connection lost after the last answer, before the OK trailers: nothing to send again.
        def segment_stream(call, requests, context):
            yield from (self.answer(r) for r in requests if r.HasField("frame"))
            context.abort(grpc.StatusCode.UNAVAILABLE, "the connection went away")

        stub, calls = self.serve(segment_stream)
        summary = stream.stream_frames(stub, [(1, b"a"), (2, b"b")], reconnect_for=1)

        self.assertEqual((summary.problems, summary.line(), summary.reconnects, calls), ([], "sent 2, results 2, errors 0, skipped 0", 0, [1]))

    def test_a_camera_quiet_longer_than_reconnect_for_still_reconnects(self):
        # No frame waits while the camera is quiet: the server's restart then is not time without an answer.
        def segment_stream(call, requests, context):
            next(requests)  # the config
            if call == 1:
                time.sleep(1.5)
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            yield from (self.answer(r) for r in requests)

        def camera():
            time.sleep(2)
            yield 1, b"a"

        stub, calls = self.serve(segment_stream)
        summary = stream.stream_frames(stub, camera(), reconnect_for=1)

        self.assertEqual((summary.problems, summary.line(), summary.reconnects), ([], "sent 1, results 1, errors 0, skipped 0", 1))

    def test_a_camera_quiet_across_a_second_restart_still_reconnects(self):
        # Call 1 answers frame 1 and goes; the camera is then quiet for longer than reconnect_for, and call 2
        # goes too, with nothing answered: no frame waited, so that is no time without an answer either.
        opened, release = threading.Event(), threading.Event()

        def segment_stream(call, requests, context):
            next(requests)  # the config
            if call == 1:
                yield self.answer(next(requests))
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")  # no RetryInfo: the backoff counts a failure
            if call == 2:
                opened.set()
                release.wait(30)
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting again")
            yield from (self.answer(r) for r in requests)

        def camera():
            yield 1, b"a"
            opened.wait(30)
            time.sleep(1.5)
            release.set()
            yield 2, b"b"

        stub, calls = self.serve(segment_stream)
        self.addCleanup(release.set)  # a failed test does not leave call 2 waiting
        summary = stream.stream_frames(stub, camera(), reconnect_for=1)

        self.assertEqual((summary.problems, summary.line(), [r.frame_id for r in summary.responses], summary.reconnects),
                         ([], "sent 2, results 2, errors 0, skipped 0", [1, 2], 2))

    def test_frames_waiting_while_every_call_is_refused_give_up_after_reconnect_for(self):
        # Every call refused with RetryInfo 0.1 s (no backoff failure counted) before it takes a frame: the frames
        # stay in the client's own queue, on no call, and wait all the same; the stream gives up after reconnect_for.
        def segment_stream(call, requests, context):
            context.set_trailing_metadata((("grpc-status-details-bin", _status_details(grpc.StatusCode.UNAVAILABLE, 100_000_000)),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "the models are still loading")

        stub, calls = self.serve(segment_stream)

        class ConfigOnly:
            # Left to grpc, a call may take a frame before its refusal comes back: here it never does.
            def SegmentStream(self, requests):
                return stub.SegmentStream(iter([next(requests)]))

        outcome = {}

        def run():
            try:
                stream.stream_frames(ConfigOnly(), [(1, b"a"), (2, b"b")], reconnect_for=1)
            except Exception as e:  # noqa: BLE001 - the test reads it
                outcome["error"] = e

        started = time.monotonic()
        thread = threading.Thread(target=run, daemon=True)  # a stream that never gives up must not hold the tests
        thread.start()
        thread.join(10)
        elapsed = time.monotonic() - started

        self.assertFalse(thread.is_alive(), f"the stream still reconnects after 10 s ({len(calls)} calls)")
        self.assertIsInstance(outcome.get("error"), stream.StreamGaveUp, f"the stream did not give up: {outcome}")
        self.assertIn("gave up", outcome["error"].details())
        self.assertGreater(len(calls), 1, "not reconnected")
        self.assertGreater(elapsed, 0.8, "gave up before reconnect_for")

    def test_calls_after_an_unavailable_one_go_on_new_channels_and_each_is_closed(self):
        # The stub's channel would wait out gRPC's own backoff before it tries the server again; each call after
        # an UNAVAILABLE one goes on a channel reconnect opens, closed once the next is opened or the stream ends.
        retry_soon = (("grpc-status-details-bin", _status_details(grpc.StatusCode.UNAVAILABLE, 10_000_000)),)
        peers = []

        class Servicer(pb_grpc.SegmentationServiceServicer):
            def SegmentStream(self, requests, context):
                peers.append(context.peer())
                if len(peers) <= 2:
                    context.set_trailing_metadata(retry_soon)
                    context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
                return (ResumingStreamTest.answer(r) for r in requests if r.HasField("frame"))

        address = start_fake(self, Servicer())
        opened = []

        class Recorded:
            """A channel whose close is recorded."""

            def __init__(self):
                self.channel, self.closed = common.open_channel(address), False
                opened.append(self)

            def close(self):
                self.closed = True
                self.channel.close()

            def __getattr__(self, name):
                return getattr(self.channel, name)

        with grpc.insecure_channel(address) as first:
            summary = stream.stream_frames(pb_grpc.SegmentationServiceStub(first), [(1, b"a"), (2, b"b")],
                                           reconnect_for=5, reconnect=Recorded)

        self.assertEqual((summary.problems, summary.line(), summary.reconnects), ([], "sent 2, results 2, errors 0, skipped 0", 2))
        self.assertEqual([channel.closed for channel in opened], [True, True], "two channels opened, both closed")
        # Three calls, each on a connection of its own: the channels share none.
        self.assertEqual(len(set(peers)), 3, peers)

    def test_answers_skipped_as_draining_are_no_progress(self):
        # A server that skips every frame as draining, call after call, answers nothing: the stream gives up
        # after reconnect_for, not going on at once forever (from call 20 on it answers, for a client that did).
        def segment_stream(call, requests, context):
            for request in requests:
                if not request.HasField("frame"):
                    continue
                if call >= 20:
                    yield self.answer(request)
                else:
                    yield pb.SegmentStreamResponse(frame_id=request.frame.frame_id, draining=True,
                                                   skipped=pb.FrameSkipped(reason=pb.SKIP_REASON_DRAINING))

        stub, calls = self.serve(segment_stream)
        with self.assertRaises(stream.StreamGaveUp):
            stream.stream_frames(stub, [(1, b"a")], reconnect_for=1)
        self.assertLess(len(calls), 10)

    def test_a_retry_info_delay_of_zero_or_less_is_none(self):
        class Error:
            def __init__(self, duration):
                retry_info = _field(1, b"type.googleapis.com/google.rpc.RetryInfo") + _field(2, _field(1, duration))
                self.details = b"\x08\x0e" + _field(3, retry_info)

            def trailing_metadata(self):
                return (("grpc-status-details-bin", self.details),)

        self.assertEqual(stream.retry_delay(Error(b"\x08\x01\x10\x80\xca\xb5\xee\x01")), 1.5)
        self.assertIsNone(stream.retry_delay(Error(b"")))  # 0 s
        self.assertIsNone(stream.retry_delay(Error(b"\x08" + b"\xff" * 9 + b"\x01")))  # -1 s


def _field(number, data):
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _status_details(code, nanos=None):
    """A google.rpc.Status for grpc-status-details-bin, with a RetryInfo of nanos ns when nanos is not None."""
    status = _varint(1 << 3) + _varint(code.value[0])
    if nanos is not None:
        duration = _varint(2 << 3) + _varint(nanos) if nanos else b""
        status += _field(3, _field(1, b"type.googleapis.com/google.rpc.RetryInfo") + _field(2, _field(1, duration)))
    return status


class UnaryRetryTest(unittest.TestCase):
    """common.call_with_retries against an in-process server of the test's own (a real one cannot be made to
    refuse when wanted); needs no MASKFORMER_ADDRESS."""

    def serve(self, answers):
        """A stub for a server whose Segment fails with answers[n] = (code, RetryInfo nanos or None) on call n
        from 0, and answers after them; and the monotonic time of each call."""
        calls = []

        class Servicer(pb_grpc.SegmentationServiceServicer):
            def Segment(self, request, context):
                calls.append(time.monotonic())
                if len(calls) <= len(answers):
                    code, nanos = answers[len(calls) - 1]
                    context.set_trailing_metadata((("grpc-status-details-bin", _status_details(code, nanos)),))
                    context.abort(code, "the server is overloaded")
                return pb.SegmentResponse(frame_id=request.frame_id)

        return serve_fake(self, Servicer()), calls

    def test_resource_exhausted_with_retry_info_is_retried_after_its_delay(self):
        exhausted = (grpc.StatusCode.RESOURCE_EXHAUSTED, 200_000_000)  # RetryInfo 0.2 s
        stub, calls = self.serve([exhausted, exhausted])

        response = common.call_with_retries(stub.Segment, pb.SegmentRequest(frame_id=7), 10)

        self.assertEqual((response.frame_id, len(calls)), (7, 3))
        waited = calls[-1] - calls[0]
        self.assertGreaterEqual(waited, 0.4)
        self.assertLess(waited, 1.5)

    def test_resource_exhausted_with_retry_info_at_most_five_attempts(self):
        stub, calls = self.serve([(grpc.StatusCode.RESOURCE_EXHAUSTED, 0)] * 10)  # RetryInfo 0 s: at once

        with self.assertRaises(grpc.RpcError) as raised:
            common.call_with_retries(stub.Segment, pb.SegmentRequest(), 10)

        self.assertEqual((raised.exception.code(), len(calls)), (grpc.StatusCode.RESOURCE_EXHAUSTED, 5))

    def test_resource_exhausted_without_retry_info_fails_at_once(self):
        stub, calls = self.serve([(grpc.StatusCode.RESOURCE_EXHAUSTED, None)])

        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            common.call_with_retries(stub.Segment, pb.SegmentRequest(), 10)

        self.assertEqual((raised.exception.code(), len(calls)), (grpc.StatusCode.RESOURCE_EXHAUSTED, 1))
        self.assertLess(time.monotonic() - started, 1)


class TokenTest(unittest.TestCase):
    """Against a second server that needs a bearer token (tools/test-all.sh starts one)."""

    def test_segment_sends_MASKFORMER_TOKEN(self):
        server, token = os.environ.get("MASKFORMER_TOKEN_SERVER"), os.environ.get("MASKFORMER_TOKEN_SERVER_TOKEN")
        if not server or not token:
            raise AssertionError(
                "MASKFORMER_TOKEN_SERVER and MASKFORMER_TOKEN_SERVER_TOKEN are not set: start a server with "
                "--MaskFormer:Security:TokensFile=FILE (FILE holding the token) and set both to its host:port "
                "and the token (tools/test-all.sh does)")
        without, wrong, right = (run_script("segment.py", HELDOUT_IMAGE, server=server, token=t)
                                 for t in (None, "not-the-token", token))
        self.assertEqual(without.returncode, 1, without.stdout + without.stderr)
        self.assertIn("UNAUTHENTICATED", without.stderr)
        self.assertEqual(wrong.returncode, 1, wrong.stdout + wrong.stderr)
        self.assertEqual(right.returncode, 0, right.stdout + right.stderr)
        self.assertIn("classes:", right.stdout)


class TlsTest(unittest.TestCase):
    """Against a third server with TLS that wants a client certificate from its own CA (tools/test-all.sh starts
    one, with certificates from tools/make-test-certs.sh)."""

    def setUp(self):
        self.server, folder = os.environ.get("MASKFORMER_TLS_SERVER"), os.environ.get("MASKFORMER_TLS_FILES")
        if not self.server or not folder:
            raise AssertionError(
                "MASKFORMER_TLS_SERVER and MASKFORMER_TLS_FILES are not set: make certificates with "
                "tools/make-test-certs.sh DIR, start a server on https://127.0.0.1:PORT with DIR/server.pem, "
                "DIR/server.key and MaskFormer:Security:ClientCaPath=DIR/ca.pem, and set both to its address and "
                "DIR (tools/test-all.sh does)")
        folder = Path(folder)
        self.full = dict(zip(TLS_VARIABLES, (str(folder / f) for f in ("ca.pem", "client.pem", "client.key"))))

    def test_segment_over_mutual_tls(self):
        proc = run_script("segment.py", HELDOUT_IMAGE, server=self.server, tls=self.full)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("classes:", proc.stdout)

    def test_stream_over_mutual_tls(self):
        proc = run_script("stream.py", CLIP, "--no-delta", "--tasks", "semantic", server=self.server, tls=self.full)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout.strip().splitlines()[-1], "sent 16, results 16, errors 0, skipped 0", proc.stdout)

    def test_segment_without_client_certificate_fails_at_once(self):
        started = time.monotonic()
        proc = run_script("segment.py", HELDOUT_IMAGE, "--connect-timeout", str(ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S), server=self.server,
                          tls={"MASKFORMER_CA_CERT": self.full["MASKFORMER_CA_CERT"]})
        elapsed = time.monotonic() - started
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertNotIn("classes:", proc.stdout)
        self.assertIn(f"cannot reach the MaskFormer server at {self.server}: ", proc.stderr)
        self.assertIn("the TLS handshake failed", proc.stderr)
        self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"took {elapsed:.1f} s to fail")

    def test_server_from_another_ca_refused_at_once(self):
        other = str(Path(self.full["MASKFORMER_CA_CERT"]).with_name("other-ca.pem"))
        started = time.monotonic()
        proc = run_script("segment.py", HELDOUT_IMAGE, "--connect-timeout", str(ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S), server=self.server,
                          tls=dict(self.full, MASKFORMER_CA_CERT=other))
        elapsed = time.monotonic() - started
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertNotIn("classes:", proc.stdout)
        self.assertIn("the TLS handshake failed", proc.stderr)
        self.assertIn("certificate verify failed", proc.stderr)
        self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"took {elapsed:.1f} s to fail")

    def test_cleartext_address_of_the_tls_server_says_it_speaks_tls(self):
        for script, server in (("segment.py", common.host_port(self.server)), ("stream.py", self.server.replace("https://", "http://"))):
            started = time.monotonic()
            proc = run_script(script, HELDOUT_IMAGE if script == "segment.py" else CLIP, "--connect-timeout", str(ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S), server=server)
            elapsed = time.monotonic() - started
            self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
            self.assertIn(f"cannot reach the MaskFormer server at {server}: ", proc.stderr)
            self.assertIn(f"the server there seems to speak TLS, it answered a TLS handshake: use {self.server}, "
                          "with MASKFORMER_CA_CERT for a private CA)", proc.stderr)
            self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"{script} took {elapsed:.1f} s to fail")

    def test_wait_for_server_ends_at_once_when_waiting_cannot_help(self):
        # A scheme or a certificate that does not fit stays so: --wait-for-server ends with the error and hint it
        # gives without, long before --connect-timeout.
        folder = Path(self.full["MASKFORMER_CA_CERT"]).parent
        cases = (
            ("a cleartext address", common.host_port(self.server), {},
             f"the server there seems to speak TLS, it answered a TLS handshake: use {self.server}, "),
            ("no client certificate", self.server, {"MASKFORMER_CA_CERT": self.full["MASKFORMER_CA_CERT"]},
             "it accepts connections, so the TLS handshake failed"),
            ("a server from another CA", self.server, dict(self.full, MASKFORMER_CA_CERT=str(folder / "other-ca.pem")),
             "certificate verify failed"),
            ("an expired client certificate", self.server,
             dict(self.full, MASKFORMER_CLIENT_CERT=str(folder / "client-expired.pem"),
                  MASKFORMER_CLIENT_KEY=str(folder / "client-expired.key")),
             "refuses one out of date"),
        )
        for what, server, tls, said in cases:
            with self.subTest(what):
                started = time.monotonic()
                proc = run_script("segment.py", HELDOUT_IMAGE, "--wait-for-server", "--connect-timeout",
                                  str(ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S), server=server, tls=tls)
                elapsed = time.monotonic() - started
                self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
                self.assertIn(f"cannot reach the MaskFormer server at {server}: ", proc.stderr)
                self.assertIn(said, proc.stderr)
                self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"took {elapsed:.1f} s to fail")

    def assert_out_of_date(self, name, said, earliest_days, latest_days):
        """segment.py with client certificate name (tools/make-test-certs.sh) fails at once, saying said and a
        date between earliest_days and latest_days from now."""
        folder = Path(self.full["MASKFORMER_CLIENT_CERT"]).parent
        certificate = str(folder / f"{name}.pem")
        tls = dict(self.full, MASKFORMER_CLIENT_CERT=certificate, MASKFORMER_CLIENT_KEY=str(folder / f"{name}.key"))
        started = time.monotonic()
        proc = run_script("segment.py", HELDOUT_IMAGE, "--connect-timeout", str(ConnectFailureTest.AT_ONCE_CONNECT_TIMEOUT_S), server=self.server, tls=tls)
        elapsed = time.monotonic() - started
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertNotIn("classes:", proc.stdout)
        match = re.search(f"MASKFORMER_CLIENT_CERT {re.escape(certificate)} {said} "
                          r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)", proc.stderr)
        self.assertIsNotNone(match, proc.stderr)
        self.assertNotIn("does the server want a client certificate", proc.stderr)
        when = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        days = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400
        self.assertTrue(earliest_days < days < latest_days, f"{match[1]} is {days:.2f} days from now")
        self.assertLess(elapsed, ConnectFailureTest.AT_ONCE_S, f"took {elapsed:.1f} s to fail")
        return proc.stderr

    def test_expired_client_certificate_says_when_it_expired(self):
        stderr = self.assert_out_of_date("client-expired", "expired at", -2, 0)
        self.assertIn("; renew it)", stderr)

    def test_client_certificate_not_yet_valid_says_from_when(self):
        stderr = self.assert_out_of_date("client-not-yet-valid", "is not valid before", 0, 2)
        self.assertIn("; is this machine's clock right?)", stderr)

    def test_settings_that_do_not_fit_are_named(self):
        cleartext = run_script("segment.py", HELDOUT_IMAGE, server=self.server.replace("https://", "http://"), tls=self.full)
        half = run_script("segment.py", HELDOUT_IMAGE, server=self.server,
                          tls={k: v for k, v in self.full.items() if k != "MASKFORMER_CLIENT_KEY"})
        missing = run_script("stream.py", CLIP, server=self.server, tls=dict(self.full, MASKFORMER_CA_CERT="/no/such/ca.pem"))
        not_a_ca = run_script("segment.py", HELDOUT_IMAGE, server=self.server,
                              tls=dict(self.full, MASKFORMER_CA_CERT=self.full["MASKFORMER_CLIENT_KEY"]))
        wrong_key = run_script("segment.py", HELDOUT_IMAGE, server=self.server,
                               tls=dict(self.full, MASKFORMER_CLIENT_KEY=str(Path(self.full["MASKFORMER_CLIENT_KEY"]).with_name("server.key"))))
        self.assertEqual(cleartext.returncode, 2, cleartext.stderr)
        self.assertIn("needs an https:// server address", cleartext.stderr)
        self.assertEqual(half.returncode, 2, half.stderr)
        self.assertIn("go together", half.stderr)
        self.assertEqual(missing.returncode, 2, missing.stderr)
        self.assertIn("cannot read /no/such/ca.pem", missing.stderr)
        self.assertEqual(not_a_ca.returncode, 2, not_a_ca.stderr)
        self.assertIn("holds no PEM CA certificate", not_a_ca.stderr)
        self.assertEqual(wrong_key.returncode, 2, wrong_key.stderr)
        self.assertIn("is not the PEM private key", wrong_key.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

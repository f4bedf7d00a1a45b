#!/usr/bin/python3
"""Resident memory of the server before, during and after a burst of large and hostile requests.

Starts the built server (Release) on 127.0.0.1:PORT with the committed model, waits until it answers,
reads VmRSS from /proc, sends the burst from THREADS callers at once (a 2048x1536 PNG and JPEG, a 1000-frame
GIF, the TIFF second-page bomb, a 40 MB message, a PNG cut short), then reads VmRSS every second for
SETTLE seconds. Runs on Debian's /usr/bin/python3 with the Python example's stubs (examples/python/install.sh) and python3-pil.

    /usr/bin/python3 tools/memory-burst.py [--port 5341] [--threads 8] [--rounds 4] [--settle 90] [--server-arg=--Key=Value ...]
"""
import argparse
import io
import random
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "python"))
import common  # noqa: E402

pb, pb_grpc = common.load_stubs()
import grpc  # noqa: E402
from PIL import Image  # noqa: E402


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def encoded(fmt, size, **kwargs):
    rng = random.Random(7)
    image = Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def gif_1000_frames():
    frames = [Image.new("P", (640, 480), i % 2) for i in range(1000)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def tiff_bomb():
    def page(width, height, next_at, data_at):
        entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, data_at), (278, 4, height), (279, 4, 1)]
        body = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", t, ty, 1, v) for t, ty, v in entries)
        return body + struct.pack("<I", next_at)
    first = 8
    second = first + 2 + 8 * 12 + 4 + 1
    return b"II*\x00" + struct.pack("<I", first) + page(1, 1, second, second - 1) + b"\x00" + page(20000, 20000, 0, second - 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5341)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--settle", type=int, default=90)
    parser.add_argument("--server-arg", action="append", default=[], help="extra server setting, e.g. --server-arg=--MaskFormer:Inference:CpuMemoryArena=Keep")
    args = parser.parse_args()

    server = subprocess.Popen(
        ["dotnet", str(ROOT / "src/MaskFormer.Server/bin/Release/net10.0/MaskFormer.Server.dll"),
         f"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{args.port}", f"--MaskFormer:Models:Path={ROOT / 'models'}", *args.server_arg],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{args.port}", options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 256 << 20)])
        client = pb_grpc.SegmentationServiceStub(channel)
        png = encoded("PNG", (2048, 1536))
        small = encoded("PNG", (64, 48))
        inputs = {
            "png-2048x1536": png,
            "jpeg-2048x1536": encoded("JPEG", (2048, 1536), quality=90),
            "gif-1000-frames": gif_1000_frames(),
            "tiff-second-page-bomb": tiff_bomb(),
            "message-40mb": small + bytes(40_000_000),
            "png-cut-short": png[: len(png) * 6 // 10],
        }
        deadline = time.time() + 300
        while True:
            try:
                client.Segment(pb.SegmentRequest(image=pb.Image(encoded=small)), timeout=30)
                break
            except grpc.RpcError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        time.sleep(5)
        before = rss_mib(server.pid)

        statuses = {}
        lock = threading.Lock()
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib(server.pid))
                time.sleep(0.05)

        def caller():
            for _ in range(args.rounds):
                for name, data in inputs.items():
                    try:
                        client.Segment(pb.SegmentRequest(image=pb.Image(encoded=data), tasks=[pb.SEGMENTATION_TASK_PANOPTIC]), timeout=300)
                        code = "OK"
                    except grpc.RpcError as error:
                        code = error.code().name
                    with lock:
                        statuses[(name, code)] = statuses.get((name, code), 0) + 1

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.time()
        callers = [threading.Thread(target=caller) for _ in range(args.threads)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
        burst_s = time.time() - started
        done.set()
        sampler.join()
        after = {0: rss_mib(server.pid)}
        for second in range(1, args.settle + 1):
            time.sleep(1)
            if second in (10, 30, 45, 60, 90, 120) or second == args.settle:
                after[second] = rss_mib(server.pid)

        print(f"burst: {args.threads} callers x {args.rounds} rounds x {len(inputs)} inputs in {burst_s:.1f} s")
        for (name, code), count in sorted(statuses.items()):
            print(f"  {name}: {code} x{count}")
        print(f"VmRSS before {before:.0f} MiB, peak {peak[0]:.0f} MiB, " + ", ".join(f"+{s} s {v:.0f} MiB" for s, v in after.items()))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()

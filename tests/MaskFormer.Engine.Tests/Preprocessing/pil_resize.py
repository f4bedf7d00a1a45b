"""Resizes raw RGB24 images with Pillow's Image.resize(BILINEAR), the oracle for PilResizeTests.

Reads lines "in_path width height out_path target_width target_height" from stdin; writes the resized
pixels as raw RGB24 to out_path; prints the Pillow version first.
"""
import sys

from PIL import Image
import PIL

print(PIL.__version__, flush=True)
for line in sys.stdin:
    source, width, height, target, target_width, target_height = line.split()
    with open(source, "rb") as f:
        image = Image.frombytes("RGB", (int(width), int(height)), f.read())
    resized = image.resize((int(target_width), int(target_height)), resample=Image.BILINEAR)
    with open(target, "wb") as f:
        f.write(resized.tobytes())

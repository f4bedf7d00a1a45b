"""Rebuilding complete stream results from delta results (StreamConfig.delta).

With deltas on, a result may send its semantic label map (semantic.label_map_delta) and its panoptic
segment-id map (panoptic.segment_id_delta) as the rectangles that changed since the previous result on
the stream (each patch holds, per sample, what to add to the previous map modulo the sample's size: 0
where nothing changed), and an instance whose mask did not change as mask_unchanged with its track_id.
A DeltaRebuilder holds the previous result's maps (as pixels) and masks (by track id) and turns every
result, complete or delta, into a Frame: both maps as flat lists of ids and every instance with its
mask. Feed it every result of the stream, in order; errors and skipped frames do not change what it
holds (the server's deltas never refer to them).
"""

from dataclasses import dataclass, field

from common import decode_png


def decode_label_map(data, encoding_is_raw, bits_per_pixel):
    """A semantic label map's data (PNG, or raw little-endian 8/16-bit) as a list of label ids."""
    if encoding_is_raw:
        if bits_per_pixel == 8:
            return list(data)
        return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]
    _, _, channels, _, samples = decode_png(data)
    if channels != 1:
        raise ValueError(f"label map PNG has {channels} channels")
    return samples


def decode_segment_ids(data):
    """A panoptic RGB PNG (COCO: id = R + 256 G + 65536 B) as a list of segment ids."""
    _, _, channels, depth, s = decode_png(data)
    if (channels, depth) != (3, 8):
        raise ValueError("segment-id PNG is not 8-bit RGB")
    return [s[i] + 256 * s[i + 1] + 65536 * s[i + 2] for i in range(0, len(s), 3)]


def _add_bytes(old, change):
    """Adds per byte (8-bit labels; the R, G and B of segment ids), each modulo 256."""
    return (((old & 0xFF) + (change & 0xFF)) & 0xFF) | ((((old >> 8) + (change >> 8)) & 0xFF) << 8) \
        | ((((old >> 16) + (change >> 16)) & 0xFF) << 16)


def _add_words(old, change):
    """Adds 16-bit labels modulo 65536."""
    return (old + change) & 0xFFFF


def _apply(previous, width, delta, decode, add):
    pixels = list(previous)
    for patch in delta.patches:
        values = decode(patch.data)
        if len(values) != patch.width * patch.height:
            raise ValueError(f"patch at ({patch.x}, {patch.y}) has {len(values)} pixels, not {patch.width}x{patch.height}")
        for y in range(patch.height):
            row = (patch.y + y) * width + patch.x
            for x in range(patch.width):
                pixels[row + x] = add(pixels[row + x], values[y * patch.width + x])
    return pixels


@dataclass
class Frame:
    """A complete result as pixels and masks; `result` is the SegmentResponse as received."""

    frame_id: int
    width: int
    height: int
    semantic: list | None  # label ids, row by row
    panoptic: list | None  # segment ids, row by row
    instances: list = field(default_factory=list)  # Instance messages, each with its mask
    result: object = None


class DeltaRebuilder:
    """Rebuilds a delta stream's results; see the module's docstring."""

    def __init__(self):
        self._frame_id = None
        self._semantic = None
        self._semantic_format = None  # (raw?, bits) of the last complete label map
        self._panoptic = None
        self._masks = {}  # track id -> Rle, for track ids that name one instance
        self.deltas = 0  # results that were (at least partly) deltas

    def apply(self, result):
        """Rebuilds one result (SegmentResponse) into a Frame."""
        width = result.width
        delta = False

        def check_base(d):
            if d.base_frame_id != self._frame_id:
                raise ValueError(f"delta on {d.base_frame_id}, but the last result was {self._frame_id}")

        semantic = None
        if result.HasField("semantic"):
            if result.semantic.HasField("label_map_delta"):
                d = result.semantic.label_map_delta
                check_base(d)
                raw, bits = self._semantic_format
                semantic = _apply(self._semantic, width, d, lambda data: decode_label_map(data, raw, bits),
                                  _add_words if bits == 16 else _add_bytes)
                delta = True
            else:
                lm = result.semantic.label_map
                self._semantic_format = (lm.encoding == _RAW, lm.bits_per_pixel)
                semantic = decode_label_map(lm.data, lm.encoding == _RAW, lm.bits_per_pixel)

        panoptic = None
        if result.HasField("panoptic"):
            if result.panoptic.HasField("segment_id_delta"):
                d = result.panoptic.segment_id_delta
                check_base(d)
                panoptic = _apply(self._panoptic, width, d, decode_segment_ids, _add_bytes)
                delta = True
            else:
                panoptic = decode_segment_ids(result.panoptic.segment_id_png)

        instances = []
        for instance in result.instance.instances:
            if instance.mask_unchanged:
                if instance.track_id not in self._masks:
                    raise ValueError(f"instance refers to track {instance.track_id}, which the last result does not have")
                rebuilt = type(instance)()
                rebuilt.CopyFrom(instance)
                rebuilt.mask.CopyFrom(self._masks[instance.track_id])
                rebuilt.mask_unchanged = False
                instances.append(rebuilt)
                delta = True
            else:
                instances.append(instance)

        counts = {}
        for i in instances:
            counts[i.track_id] = counts.get(i.track_id, 0) + 1
        self._masks = {i.track_id: i.mask for i in instances if i.track_id != 0 and counts[i.track_id] == 1}
        self._semantic, self._panoptic, self._frame_id = semantic, panoptic, result.frame_id
        self.deltas += 1 if delta else 0
        return Frame(result.frame_id, width, result.height, semantic, panoptic, instances, result)


_RAW = 2  # LABEL_MAP_ENCODING_RAW


def decode_complete(result):
    """A complete result (from a stream without deltas) as a Frame."""
    return DeltaRebuilder().apply(result)


def frame_differences(a, b):
    """The ways two Frames differ (an empty list when equal): sizes, every pixel of both maps, every
    instance (masks included) and the semantic classes and panoptic segments."""
    checks = [
        ("size", (a.width, a.height), (b.width, b.height)),
        ("semantic map", a.semantic, b.semantic),
        ("panoptic map", a.panoptic, b.panoptic),
        ("instances", list(a.instances), list(b.instances)),
        ("semantic classes", list(a.result.semantic.classes), list(b.result.semantic.classes)),
        ("panoptic segments", list(a.result.panoptic.segments), list(b.result.panoptic.segments)),
    ]
    return [what for what, x, y in checks if x != y]

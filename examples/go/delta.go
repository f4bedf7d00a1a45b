package main

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/protobuf/proto"
)

// Rebuilding complete stream results from delta results (StreamConfig.delta).
//
// With deltas on, a result may send its semantic label map (semantic.label_map_delta) and its panoptic
// segment-id map (panoptic.segment_id_delta) as the rectangles that changed since the previous result on
// the stream (each patch holds, per sample, what to add to the previous map modulo the sample's size: 0
// where nothing changed), and an instance whose mask did not change as mask_unchanged with its track_id.
// A deltaRebuilder holds the previous result's maps (as pixels) and masks (by track id) and turns every
// result, complete or delta, into a frame. Feed it every result of the stream, in order; errors and
// skipped frames do not change what it holds (the server's deltas never refer to them).

// frame is a complete result as pixels and masks.
type frame struct {
	width, height int
	semantic      []uint32 // label ids, row by row; nil without the semantic task
	panoptic      []uint32 // segment ids, row by row; nil without the panoptic task
	instances     []*pb.Instance
	result        *pb.SegmentResponse // as received
}

type deltaRebuilder struct {
	frameID      uint64
	started      bool
	semantic     []uint32
	semanticRaw  bool // the encoding and sample size of the last complete label map, which patches share
	semanticBits uint32
	panoptic     []uint32
	masks        map[uint32]*pb.Rle // by track id, for track ids that name one instance
	deltas       int                // results that were, at least in part, deltas
}

// decodeComplete turns a result of a stream without deltas into a frame.
func decodeComplete(result *pb.SegmentResponse) (*frame, error) {
	return (&deltaRebuilder{}).apply(result)
}

// apply rebuilds one result into a complete frame.
func (r *deltaRebuilder) apply(result *pb.SegmentResponse) (*frame, error) {
	out := &frame{width: int(result.GetWidth()), height: int(result.GetHeight()), result: result}
	wasDelta := false
	checkBase := func(delta *pb.MapDelta) error {
		if !r.started || delta.GetBaseFrameId() != r.frameID {
			return fmt.Errorf("delta on frame %d, but the last result was frame %d", delta.GetBaseFrameId(), r.frameID)
		}
		return nil
	}

	if semantic := result.GetSemantic(); semantic != nil {
		if delta := semantic.GetLabelMapDelta(); delta != nil {
			if err := checkBase(delta); err != nil {
				return nil, err
			}
			raw, bits := r.semanticRaw, r.semanticBits
			pixels, err := applyPatches(r.semantic, out.width, delta, func(data []byte) ([]uint32, error) { return labelIDs(data, raw, bits) }, addSamples(bits))
			if err != nil {
				return nil, err
			}
			out.semantic, wasDelta = pixels, true
		} else {
			labelMap := semantic.GetLabelMap()
			r.semanticRaw = labelMap.GetEncoding() == pb.LabelMapEncoding_LABEL_MAP_ENCODING_RAW
			r.semanticBits = labelMap.GetBitsPerPixel()
			pixels, err := labelIDs(labelMap.GetData(), r.semanticRaw, r.semanticBits)
			if err != nil {
				return nil, err
			}
			out.semantic = pixels
		}
	}

	if panoptic := result.GetPanoptic(); panoptic != nil {
		if delta := panoptic.GetSegmentIdDelta(); delta != nil {
			if err := checkBase(delta); err != nil {
				return nil, err
			}
			pixels, err := applyPatches(r.panoptic, out.width, delta, segmentIDs, addSamples(8))
			if err != nil {
				return nil, err
			}
			out.panoptic, wasDelta = pixels, true
		} else {
			pixels, err := segmentIDs(panoptic.GetSegmentIdPng())
			if err != nil {
				return nil, err
			}
			out.panoptic = pixels
		}
	}

	for _, instance := range result.GetInstance().GetInstances() {
		if !instance.GetMaskUnchanged() {
			out.instances = append(out.instances, instance)
			continue
		}
		mask, known := r.masks[instance.GetTrackId()]
		if !known {
			return nil, fmt.Errorf("an instance refers to track %d, which the last result does not have", instance.GetTrackId())
		}
		rebuilt := proto.Clone(instance).(*pb.Instance)
		rebuilt.Mask, rebuilt.MaskUnchanged = mask, false
		out.instances = append(out.instances, rebuilt)
		wasDelta = true
	}

	perTrack := map[uint32]int{}
	for _, instance := range out.instances {
		perTrack[instance.GetTrackId()]++
	}
	r.masks = map[uint32]*pb.Rle{}
	for _, instance := range out.instances {
		if instance.GetTrackId() != 0 && perTrack[instance.GetTrackId()] == 1 {
			r.masks[instance.GetTrackId()] = instance.GetMask()
		}
	}
	r.semantic, r.panoptic, r.frameID, r.started = out.semantic, out.panoptic, result.GetFrameId(), true
	if wasDelta {
		r.deltas++
	}
	return out, nil
}

// applyPatches adds a delta's patches to a copy of previous, a map width pixels wide.
func applyPatches(previous []uint32, width int, delta *pb.MapDelta, decode func([]byte) ([]uint32, error), add func(old, change uint32) uint32) ([]uint32, error) {
	pixels := append([]uint32(nil), previous...)
	for _, patch := range delta.GetPatches() {
		values, err := decode(patch.GetData())
		if err != nil {
			return nil, err
		}
		x0, y0, w, h := int(patch.GetX()), int(patch.GetY()), int(patch.GetWidth()), int(patch.GetHeight())
		if len(values) != w*h || x0+w > width || (y0+h)*width > len(pixels) {
			return nil, fmt.Errorf("patch at (%d, %d) has %d pixels for %dx%d, or lies outside the map", x0, y0, len(values), w, h)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				at := (y0+y)*width + x0 + x
				pixels[at] = add(pixels[at], values[y*w+x])
			}
		}
	}
	return pixels, nil
}

// addSamples adds per sample modulo its size: 16-bit labels as one word; 8-bit labels and the R, G and B
// bytes of segment ids byte by byte.
func addSamples(bits uint32) func(old, change uint32) uint32 {
	if bits == 16 {
		return func(old, change uint32) uint32 { return (old + change) & 0xFFFF }
	}
	return func(old, change uint32) uint32 {
		var sum uint32
		for shift := 0; shift < 24; shift += 8 {
			sum |= ((old>>shift + change>>shift) & 0xFF) << shift
		}
		return sum
	}
}

// labelIDs reads a semantic label map's data (PNG, 8- or 16-bit grey, or raw little-endian samples).
func labelIDs(data []byte, raw bool, bits uint32) ([]uint32, error) {
	if raw {
		if bits == 8 {
			ids := make([]uint32, len(data))
			for i, v := range data {
				ids[i] = uint32(v)
			}
			return ids, nil
		}
		ids := make([]uint32, len(data)/2)
		for i := range ids {
			ids[i] = uint32(data[2*i]) | uint32(data[2*i+1])<<8
		}
		return ids, nil
	}

	decoded, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	switch grey := decoded.(type) {
	case *image.Gray:
		ids := make([]uint32, len(grey.Pix))
		for i, v := range grey.Pix {
			ids[i] = uint32(v)
		}
		return ids, nil
	case *image.Gray16:
		ids := make([]uint32, len(grey.Pix)/2)
		for i := range ids {
			ids[i] = uint32(grey.Pix[2*i])<<8 | uint32(grey.Pix[2*i+1])
		}
		return ids, nil
	default:
		return nil, fmt.Errorf("label map PNG is %T, not 8- or 16-bit grey", decoded)
	}
}

// segmentIDs reads a panoptic RGB PNG (COCO: id = R + 256 G + 65536 B).
func segmentIDs(data []byte) ([]uint32, error) {
	decoded, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	rgb, ok := decoded.(*image.RGBA)
	if !ok {
		return nil, fmt.Errorf("segment-id PNG is %T, not 8-bit RGB", decoded)
	}
	ids := make([]uint32, len(rgb.Pix)/4)
	for i := range ids {
		ids[i] = uint32(rgb.Pix[4*i]) | uint32(rgb.Pix[4*i+1])<<8 | uint32(rgb.Pix[4*i+2])<<16
	}
	return ids, nil
}

// frameDifferences names what differs between two frames (none when they are equal): the size, every
// pixel of both maps, every instance with its mask, the semantic classes and the panoptic segments.
func frameDifferences(a, b *frame) []string {
	var differences []string
	if a.width != b.width || a.height != b.height {
		differences = append(differences, "size")
	}
	if !equalIDs(a.semantic, b.semantic) {
		differences = append(differences, "semantic map")
	}
	if !equalIDs(a.panoptic, b.panoptic) {
		differences = append(differences, "panoptic map")
	}
	if !equalMessages(a.instances, b.instances) {
		differences = append(differences, "instances")
	}
	if !equalMessages(a.result.GetSemantic().GetClasses(), b.result.GetSemantic().GetClasses()) {
		differences = append(differences, "semantic classes")
	}
	if !equalMessages(a.result.GetPanoptic().GetSegments(), b.result.GetPanoptic().GetSegments()) {
		differences = append(differences, "panoptic segments")
	}
	return differences
}

func equalIDs(a, b []uint32) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMessages[M proto.Message](a, b []M) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Runs transformers.js' MaskFormerImageProcessor.post_process_panoptic_segmentation on logits written
// by the .NET tests. Reads a JSON list of cases on stdin:
//   {classFile, maskFile, queries, classes, maskHeight, maskWidth, height, width, threshold, maskThreshold, overlap, outFile}
// where classes counts "no object"; writes each case's segmentation as raw int32 to outFile and prints
// one JSON line of segments per case.
import { readFileSync, writeFileSync } from 'node:fs';
import { MaskFormerImageProcessor, Tensor } from '@huggingface/transformers';

const processor = new MaskFormerImageProcessor({});
const cases = JSON.parse(readFileSync(0, 'utf8'));
for (const c of cases) {
  const floats = (file) => new Float32Array(new Uint8Array(readFileSync(file)).buffer);
  const outputs = {
    class_queries_logits: new Tensor('float32', floats(c.classFile), [1, c.queries, c.classes]),
    masks_queries_logits: new Tensor('float32', floats(c.maskFile), [1, c.queries, c.maskHeight, c.maskWidth]),
  };
  const [result] = processor.post_process_panoptic_segmentation(
    outputs, c.threshold, c.maskThreshold, c.overlap, new Set(), [[c.height, c.width]]);
  writeFileSync(c.outFile, Buffer.from(new Int32Array(result.segmentation.data).buffer));
  console.log(JSON.stringify(result.segments_info));
}

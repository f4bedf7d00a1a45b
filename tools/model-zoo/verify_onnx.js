// Optional check of model.onnx with ONNX Runtime (onnxruntime-node from npm; the
// model zoo itself needs no ONNX Runtime).  Runs every heldout/*.reference.json
// sidecar's pixel_values through model.onnx and compares with the PyTorch logits.
//
//   mkdir -p /tmp/ort && (cd /tmp/ort && npm install --no-audit --no-fund onnxruntime-node)
//   NODE_PATH=/tmp/ort/node_modules node tools/model-zoo/verify_onnx.js models/tiny-shapes
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function main() {
  const dir = process.argv[2] || 'models/tiny-shapes';
  const tol = parseFloat(process.argv[3] || '1e-3');
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
  const hdir = path.join(dir, 'heldout');
  const refs = fs.readdirSync(hdir).filter((f) => f.endsWith('.reference.json')).sort();
  let ok = refs.length > 0;
  for (const r of refs) {
    const meta = JSON.parse(fs.readFileSync(path.join(hdir, r)));
    const px = readF32(path.join(hdir, meta.files.pixel_values.file));
    const feeds = { pixel_values: new ort.Tensor('float32', px, meta.pixel_values_shape) };
    const out = await session.run(feeds);
    for (const [name, key] of [['class_queries_logits', 'class_logits'], ['masks_queries_logits', 'mask_logits']]) {
      const ref = readF32(path.join(hdir, meta.files[key].file));
      const got = out[name];
      const shapeOk = JSON.stringify(Array.from(got.dims)) === JSON.stringify(meta.files[key].shape);
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got.data[i]));
      const pass = shapeOk && maxDiff <= tol;
      ok = ok && pass;
      console.log(`${r} ${name} dims=${JSON.stringify(Array.from(got.dims))} max|diff|=${maxDiff.toExponential(3)} ${pass ? 'OK' : 'FAIL'}`);
    }
  }
  // batch 2 at another size: only shapes
  const x = new ort.Tensor('float32', new Float32Array(2 * 3 * 96 * 160), [2, 3, 96, 160]);
  const o = await session.run({ pixel_values: x });
  console.log(`batch 2 x 96x160 -> ${JSON.stringify(Array.from(o.class_queries_logits.dims))} ${JSON.stringify(Array.from(o.masks_queries_logits.dims))}`);
  process.exit(ok ? 0 : 1);
}
main().catch((e) => { console.error(e); process.exit(1); });

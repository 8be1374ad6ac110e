"""The anchor for bench/vision.sh: the same inspection done by ONNX Runtime called directly from
Python, one image at a time, no HTTP: decode (Pillow), resize and centre-crop, normalise, the
backbone (onnxruntime, the same .onnx file and thread count), then the PatchCore score with NumPy
(3×3 mean of each feature map, the stride-16 map upsampled to stride 8, nearest-neighbour
distance of every patch to the model's memory bank, the highest one).

Usage: python vision_anchor.py BACKBONE.onnx MODEL.patchcore IMAGES_DIR THREADS REQUESTS
Prints one JSON object: images/s, p50 and p99 latency in ms.
"""

import io
import json
import os
import struct
import sys
import time

# NumPy's BLAS on one thread, as the server's search runs: its spinning worker threads would
# otherwise take the cores ONNX Runtime runs on.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def read_bank(path):
    data = open(path, "rb").read()
    magic_length = 16
    (length,) = struct.unpack_from("<Q", data, magic_length + 4)
    start = magic_length + 12
    header = json.loads(data[start : start + length])
    bank = np.frombuffer(data, dtype="<f4", offset=start + length)
    return header, bank.reshape(header["bank_rows"], header["bank_dims"])


def preprocess(path, size):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((rw, rh), Image.BILINEAR)
    x, y = (rw - size) // 2, (rh - size) // 2
    array = np.asarray(image.crop((x, y, x + size, y + size)), dtype=np.float32)
    return ((array - MEAN) / STD).transpose(2, 0, 1)[None]


def mean3(features):
    padded = np.pad(features, ((0, 0), (1, 1), (1, 1)), mode="edge")
    c, h, w = features.shape
    return sum(padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9


def score(fine, coarse, bank, bank_norms):
    fine, coarse = mean3(fine[0]), mean3(coarse[0])
    coarse = coarse.repeat(2, axis=1).repeat(2, axis=2)[:, : fine.shape[1], : fine.shape[2]]
    patches = np.concatenate([fine, coarse]).reshape(fine.shape[0] + coarse.shape[0], -1).T
    distances = (patches * patches).sum(1)[:, None] + bank_norms[None, :] - 2 * patches @ bank.T
    return float(np.sqrt(np.maximum(distances.min(1), 0)).max())


def main():
    backbone, model, folder, threads, requests = sys.argv[1:6]
    threads, requests = int(threads), int(requests)
    header, bank = read_bank(model)
    bank_norms = (bank * bank).sum(1)
    size = header["backbone"]["input_size"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    loading = time.perf_counter()
    session = ort.InferenceSession(backbone, options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - loading) * 1000
    name = session.get_inputs()[0].name
    paths = sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith((".png", ".jpg", ".jpeg"))
    )
    blobs = [open(p, "rb").read() for p in paths]

    backbone_ms = []

    def inspect(index):
        batch = preprocess(io.BytesIO(blobs[index % len(blobs)]), size)
        t = time.perf_counter()
        fine, coarse = session.run(["features_stride8", "features_stride16"], {name: batch})
        backbone_ms.append((time.perf_counter() - t) * 1000)
        return score(fine, coarse, bank, bank_norms)

    for i in range(min(8, len(blobs))):
        inspect(i)
    backbone_ms.clear()
    latencies = []
    started = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        inspect(i)
        latencies.append((time.perf_counter() - t) * 1000)
    seconds = time.perf_counter() - started
    latencies.sort()
    backbone_ms.sort()
    # The backbone alone on one thread, batch 1 (as ONNX Runtime's own figures are usually given).
    single = ort.SessionOptions()
    single.intra_op_num_threads = 1
    single.inter_op_num_threads = 1
    alone = ort.InferenceSession(backbone, single, providers=["CPUExecutionProvider"])
    batch = preprocess(io.BytesIO(blobs[0]), size)
    one_thread = []
    for i in range(60):
        t = time.perf_counter()
        alone.run(["features_stride8", "features_stride16"], {name: batch})
        if i >= 10:
            one_thread.append((time.perf_counter() - t) * 1000)
    one_thread.sort()

    def rank(values, q):
        return values[min(len(values) - 1, max(0, int(np.ceil(q * len(values))) - 1))]

    print(
        json.dumps(
            {
                "images": requests,
                "images_per_second": requests / seconds,
                "p50_ms": rank(latencies, 0.5),
                "p99_ms": rank(latencies, 0.99),
                "backbone_p50_ms": rank(backbone_ms, 0.5),
                "backbone_1thread_p50_ms": rank(one_thread, 0.5),
                "load_ms": load_ms,
                "bytes": os.path.getsize(backbone),
            }
        )
    )


if __name__ == "__main__":
    main()

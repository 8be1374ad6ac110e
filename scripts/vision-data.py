"""Builds a synthetic inspection data set in MVTec-AD's layout for `edgeway vision fit` / `eval`.

The base images are structured, as real inspection images are: either a
procedurally drawn machined part (a plate with bolt holes, a bore, a slot and
a printed label, each image placed, turned and lit slightly differently), or
crops of scikit-image's brick texture. Defects come from `defect-synthesis`
(scratches, cracks, stains, pitting, burns), confined to the part, with their
exact masks. Python's `random` and NumPy's global generator (both used by the
package) are seeded, so a seed gives the same set.

Writes:
    OUT/train/good/NNN.png
    OUT/test/good/NNN.png
    OUT/test/<defect>/NNN.png
    OUT/ground_truth/<defect>/NNN_mask.png

Run with the project's .venv (scripts/vision-data.sh installs its packages).
"""

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np
from defect_synthesis import (
    BurnGenerator,
    CrackGenerator,
    MvTecExporter,
    PittingGenerator,
    ScratchGenerator,
    StainGenerator,
)


def draw_plate(size: int, rng: np.random.Generator):
    """A machined plate on a dark background; returns (BGR image, mask of the plate)."""
    s = size / 224.0
    img = np.full((size, size, 3), 55, np.uint8)
    # The plate: a rounded rectangle, drawn on a canvas that is then turned and shifted a little.
    canvas = np.zeros((size, size, 3), np.uint8)
    m0, m1 = int(24 * s), size - int(24 * s)
    r = int(14 * s)
    base = int(rng.integers(165, 190))
    cv2.rectangle(canvas, (m0 + r, m0), (m1 - r, m1), (base,) * 3, -1)
    cv2.rectangle(canvas, (m0, m0 + r), (m1, m1 - r), (base,) * 3, -1)
    for cx, cy in [(m0 + r, m0 + r), (m1 - r, m0 + r), (m0 + r, m1 - r), (m1 - r, m1 - r)]:
        cv2.circle(canvas, (cx, cy), r, (base,) * 3, -1)
    # Machining marks: faint horizontal lines, on the plate only.
    shape = canvas[:, :, 0] > 0
    for y in range(m0, m1, max(2, int(4 * s))):
        cv2.line(canvas, (m0, y), (m1, y), (base - 6,) * 3, 1)
    canvas[~shape] = 0
    # Bolt holes with a chamfer ring.
    for cx, cy in [(m0 + 2 * r, m0 + 2 * r), (m1 - 2 * r, m0 + 2 * r), (m0 + 2 * r, m1 - 2 * r), (m1 - 2 * r, m1 - 2 * r)]:
        cv2.circle(canvas, (cx, cy), int(10 * s), (base - 50,) * 3, -1)
        cv2.circle(canvas, (cx, cy), int(7 * s), (30,) * 3, -1)
    # The central bore.
    c = size // 2
    cv2.circle(canvas, (c, c - int(12 * s)), int(26 * s), (base - 40,) * 3, -1)
    cv2.circle(canvas, (c, c - int(12 * s)), int(20 * s), (25,) * 3, -1)
    # A slot and a printed label.
    cv2.rectangle(canvas, (c - int(40 * s), c + int(30 * s)), (c - int(10 * s), c + int(42 * s)), (35,) * 3, -1)
    cv2.rectangle(canvas, (c + int(2 * s), c + int(26 * s)), (c + int(60 * s), c + int(48 * s)), (240,) * 3, -1)
    cv2.putText(canvas, "EW-19", (c + int(6 * s), c + int(43 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * s, (20,) * 3, 1, cv2.LINE_AA)
    # Pose: a small turn and shift.
    angle = float(rng.uniform(-3, 3))
    dx, dy = rng.uniform(-4 * s, 4 * s, 2)
    warp = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    warp[:, 2] += (dx, dy)
    canvas = cv2.warpAffine(canvas, warp, (size, size), flags=cv2.INTER_LINEAR)
    plate = cv2.warpAffine(cv2.inRange(canvas, (1, 1, 1), (255, 255, 255)), np.eye(2, 3), (size, size))
    img[plate > 0] = canvas[plate > 0]
    # Lighting: a gentle gradient and sensor noise.
    gain = 1.0 + float(rng.uniform(-0.06, 0.06))
    ramp = np.linspace(-8, 8, size, dtype=np.float32)[None, :, None] * float(rng.uniform(-1, 1))
    noisy = img.astype(np.float32) * gain + ramp + rng.normal(0, 2.5, img.shape)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    # Defects go on flat metal only: the plate minus its holes, slot and label (eroded).
    flat = (plate > 0) & (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) > 120) & (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) < 220)
    roi = cv2.erode(flat.astype(np.uint8) * 255, np.ones((9, 9), np.uint8))
    return img, roi


def brick_crop(size: int, rng: np.random.Generator, brick: np.ndarray):
    """A random crop of scikit-image's brick texture (grey, 512²), lightly jittered in brightness."""
    h, w = brick.shape[:2]
    crop = int(size * 1.6)
    y, x = rng.integers(0, h - crop), rng.integers(0, w - crop)
    patch = cv2.resize(brick[y : y + crop, x : x + crop], (size, size), interpolation=cv2.INTER_AREA)
    patch = np.clip(patch.astype(np.float32) * float(rng.uniform(0.95, 1.05)), 0, 255).astype(np.uint8)
    return cv2.cvtColor(patch, cv2.COLOR_GRAY2BGR), None


def generators(size: int):
    """One generator per defect kind, sized for `size`-pixel images."""
    s = size / 224.0
    return {
        "scratch": ScratchGenerator(stroke_count_range=(1, 2), length_range=(int(30 * s), int(90 * s)), width_range=(2, 3)),
        "crack": CrackGenerator(base_length_range=(int(40 * s), int(100 * s)), base_width_range=(2, 3)),
        "stain": StainGenerator(radius_range=(int(10 * s), int(24 * s)), opacity_range=(0.5, 0.75), stain_type="rust"),
        "pitting": PittingGenerator(cluster_size_range=(5, 12), pit_radius_range=(2, 4), spread_radius=int(18 * s)),
        "burn": BurnGenerator(radius_range=(int(8 * s), int(18 * s))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (created; must be empty or absent)")
    parser.add_argument("--base", choices=["plate", "brick"], default="plate", help="the base images [plate]")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels [224]")
    parser.add_argument("--train", type=int, default=60, help="good training images [60]")
    parser.add_argument("--test-good", type=int, default=20, help="good test images [20]")
    parser.add_argument("--test-defective", type=int, default=50, help="defective test images, spread over the kinds [50]")
    parser.add_argument("--kinds", default="scratch,crack,stain,pitting,burn", help="defect kinds, comma-separated")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--brick", type=Path, help="brick.png (for --base brick) [scikit-image's, from the installed package]")
    args = parser.parse_args()

    if args.out.exists() and any(args.out.iterdir()):
        print(f"vision-data: {args.out} is not empty", file=sys.stderr)
        return 2
    random.seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    all_generators = generators(args.size)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in all_generators]
    if unknown or not kinds:
        print(f"vision-data: unknown defect kinds {unknown}; known: {', '.join(all_generators)}", file=sys.stderr)
        return 2

    if args.base == "brick":
        path = args.brick
        if path is None:
            import importlib.util

            spec = importlib.util.find_spec("skimage")
            path = Path(spec.origin).parent / "data" / "brick.png" if spec and spec.origin else None
        brick = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path else None
        if brick is None:
            print("vision-data: brick.png not found; pass --brick or install scikit-image==0.26.0", file=sys.stderr)
            return 2
        make = lambda: brick_crop(args.size, rng, brick)  # noqa: E731
    else:
        make = lambda: draw_plate(args.size, rng)  # noqa: E731

    train = [make()[0] for _ in range(args.train)]
    test_good = [make()[0] for _ in range(args.test_good)]
    defective = []
    min_area = max(20, (args.size // 32) ** 2)
    for i in range(args.test_defective):
        kind = kinds[i % len(kinds)]
        for _ in range(50):
            image, roi = make()
            result = all_generators[kind].apply(image, roi_mask=roi)
            if result.defect_area >= min_area:
                defective.append(result)
                break
        else:
            print(f"vision-data: could not place a {kind} defect", file=sys.stderr)
            return 1
    MvTecExporter(args.out).export(train, test_good, defective)
    print(
        f"vision-data: {args.out}: {len(train)} train/good, {len(test_good)} test/good, "
        f"{len(defective)} defective ({', '.join(kinds)}), {args.size}², base {args.base}, seed {args.seed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

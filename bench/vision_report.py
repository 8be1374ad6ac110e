"""Prints bench/vision.sh's table from the files it wrote into OUT.

Usage: python vision_report.py OUT
"""

import json
import os
import sqlite3
import sys


def load(out, name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def energy_per_image(out, precision):
    path = os.path.join(out, f"log-{precision}.db")
    if not os.path.exists(path):
        return None
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT avg(energy_j) FROM queries WHERE endpoint = 'inspect' AND status = 'ok'"
        ).fetchone()
    return row[0]


def main():
    out = sys.argv[1]
    p = {}
    for precision in ("fp32", "int8"):
        p[precision] = {
            "eval": load(out, f"eval-{precision}.json"),
            "http": load(out, f"http-{precision}.json"),
            "http1": load(out, f"http1-{precision}.json"),
            "anchor": load(out, f"anchor-{precision}.json"),
            "energy": energy_per_image(out, precision),
        }
    f, i = p["fp32"], p["int8"]

    def row(name, a, b, relation="", target=""):
        print(f"| {name} | {a} | {b} | {relation} | {target} |")

    fmt = lambda v, d=3: "n/a" if v is None else f"{v:.{d}f}"
    print("| | FP32 | INT8 | INT8 vs FP32 | target |")
    print("|---|---|---|---|---|")
    for key, label, goal in (
        ("image_auroc", "image AUROC", "≥ 0.95 (FP32); INT8 within 0.01"),
        ("pixel_auroc", "pixel AUROC", "≥ 0.90 (FP32); INT8 within 0.01"),
    ):
        a, b = f["eval"][key], i["eval"][key]
        delta = "n/a" if a is None or b is None else f"{b - a:+.4f}"
        row(label, fmt(a, 4), fmt(b, 4), delta, goal)
    sa, sb = f["anchor"]["bytes"], i["anchor"]["bytes"]
    row("model size (MiB)", fmt(sa / 2**20, 2), fmt(sb / 2**20, 2), f"{sa / sb:.2f}× smaller", "≥ 3.5× smaller")
    row("load (ms, ONNX Runtime session)", fmt(f["anchor"]["load_ms"], 0), fmt(i["anchor"]["load_ms"], 0), "", "")
    ba, bb = f["anchor"]["backbone_1thread_p50_ms"], i["anchor"]["backbone_1thread_p50_ms"]
    row("backbone p50 (ms, batch 1, 1 thread)", fmt(ba, 2), fmt(bb, 2), f"{ba / bb:.2f}× faster", "≥ 2×")
    ba, bb = f["anchor"]["backbone_p50_ms"], i["anchor"]["backbone_p50_ms"]
    row("backbone p50 (ms, batch 1, 2 threads, in the anchor)", fmt(ba, 2), fmt(bb, 2), f"{ba / bb:.2f}× faster", "")
    sa1, sb1 = f["http1"], i["http1"]
    row(
        "HTTP, 1 client: images/s, p50 / p99 (ms)",
        f"{sa1['images_per_second']:.1f}, {sa1['p50_ms']:.1f} / {sa1['p99_ms']:.1f}",
        f"{sb1['images_per_second']:.1f}, {sb1['p50_ms']:.1f} / {sb1['p99_ms']:.1f}",
        "",
        "p99 < 50 at INT8",
    )
    ha, hb = f["http"], i["http"]
    row(
        "HTTP images/s (4 clients)",
        fmt(ha["images_per_second"], 1),
        fmt(hb["images_per_second"], 1),
        f"{hb['images_per_second'] / ha['images_per_second']:.2f}×",
        "≥ 50 at INT8",
    )
    row("HTTP, 4 clients: p50 / p99 (ms)", f"{ha['p50_ms']:.1f} / {ha['p99_ms']:.1f}", f"{hb['p50_ms']:.1f} / {hb['p99_ms']:.1f}", "", "")
    aa, ab = f["anchor"], i["anchor"]
    row(
        "anchor images/s (Python + ONNX Runtime, no HTTP)",
        fmt(aa["images_per_second"], 1),
        fmt(ab["images_per_second"], 1),
        f"{ab['images_per_second'] / aa['images_per_second']:.2f}×",
        "",
    )
    row(
        "server, 1 client, vs anchor (images/s)",
        f"{sa1['images_per_second'] / aa['images_per_second']:.2f}×",
        f"{sb1['images_per_second'] / ab['images_per_second']:.2f}×",
        "",
        "≥ 1/1.15 = 0.87×",
    )
    row("energy per image (J, CPU-time model)", fmt(f["energy"]), fmt(i["energy"]), "", "")
    errors = ha["errors"] + hb["errors"]
    print(f"\n{ha['images']} + {hb['images']} images through HTTP, {errors} errors")


if __name__ == "__main__":
    main()

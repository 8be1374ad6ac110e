"""Pictures for docs/vision.md from bench/vision-redteam.sh's output.

Usage: python vision_plot.py REDTEAM_OUT DOCS_DIR
Writes DOCS_DIR/vision-evasion.svg (evasion rate against ε per precision, with 95 %
intervals, from every redteam*.json in REDTEAM_OUT) and DOCS_DIR/vision-heatmaps.jpg (test images beside their heat maps, one per
defect kind and a good one, from `edgeway vision eval --pictures`).
"""

import json
import os
import sys

from PIL import Image


def evasion_svg(report, path):
    width, height, left, bottom, top, right = 560, 320, 60, 40, 20, 120
    epsilons = [row["epsilon"] for row in report["epsilons"]]
    models = [e["model"] for e in report["epsilons"][0]["evasion"]]
    colours = {"fp32": "#1f77b4", "int8": "#d62728"}
    # ε on a log2 axis: the budgets double.
    import math

    lo, hi = math.log2(min(epsilons)), math.log2(max(epsilons))
    sx = lambda e: left + 20 + (width - left - right - 40) * (math.log2(e) - lo) / max(hi - lo, 1)
    sy = lambda r: height - bottom - (height - bottom - top) * r
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">']
    out.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    out.append(f'<line x1="{left}" y1="{sy(0)}" x2="{width - right}" y2="{sy(0)}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{sy(0)}" x2="{left}" y2="{sy(1)}" stroke="black"/>')
    for r in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<text x="{left - 8}" y="{sy(r) + 4}" text-anchor="end">{int(r * 100)} %</text>')
        out.append(f'<line x1="{left}" y1="{sy(r)}" x2="{width - right}" y2="{sy(r)}" stroke="#ddd"/>')
    for e in epsilons:
        out.append(f'<text x="{sx(e)}" y="{sy(0) + 16}" text-anchor="middle">{e}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">ε (L∞, /255)</text>')
    out.append(f'<text x="14" y="{(top + height - bottom) / 2}" transform="rotate(-90 14 {(top + height - bottom) / 2})" text-anchor="middle">defective parts passed</text>')
    for k, model in enumerate(models):
        colour = colours.get(model, "#555")
        points = []
        for row in report["epsilons"]:
            ev = next(e for e in row["evasion"] if e["model"] == model)["evaded"]
            x = sx(row["epsilon"]) + (k - 0.5) * 6
            points.append((x, sy(ev["rate"])))
            out.append(f'<line x1="{x}" y1="{sy(ev["low"])}" x2="{x}" y2="{sy(ev["high"])}" stroke="{colour}"/>')
            out.append(f'<circle cx="{x}" cy="{sy(ev["rate"])}" r="3.5" fill="{colour}"/>')
        out.append('<polyline fill="none" stroke="%s" points="%s"/>' % (colour, " ".join(f"{x},{y}" for x, y in points)))
        out.append(f'<text x="{width - right + 10}" y="{top + 20 + 18 * k}" fill="{colour}">{model.upper()}</text>')
    out.append(f'<text x="{width - right + 10}" y="{top + 20 + 18 * len(models) + 10}" fill="#555">{report["attacked"]} parts,</text>')
    out.append(f'<text x="{width - right + 10}" y="{top + 20 + 18 * len(models) + 26}" fill="#555">{report["queries"]} queries</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def heatmaps(pictures, path):
    rows = []
    for category in ("good", "scratch", "crack", "stain", "pit", "burn"):
        folder = os.path.join(pictures, category)
        if os.path.isdir(folder):
            names = sorted(os.listdir(folder))
            if names:
                rows.append(Image.open(os.path.join(folder, names[0])).convert("RGB"))
    if not rows:
        return
    w, h = rows[0].size
    sheet = Image.new("RGB", (w, h * len(rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * h))
    sheet.save(path, quality=85)


def merged(out):
    """Every `redteam*.json` in OUT (runs at different budgets), their rows joined by ε."""
    reports = []
    for name in sorted(os.listdir(out)):
        if name.startswith("redteam") and name.endswith(".json"):
            with open(os.path.join(out, name)) as f:
                reports.append(json.load(f))
    report = dict(reports[0])
    rows = {row["epsilon"]: row for r in reports for row in r["epsilons"]}
    report["epsilons"] = [rows[e] for e in sorted(rows)]
    return report


def main():
    out, docs = sys.argv[1], sys.argv[2]
    evasion_svg(merged(out), os.path.join(docs, "vision-evasion.svg"))
    heatmaps(os.path.join(out, "heatmaps"), os.path.join(docs, "vision-heatmaps.jpg"))


if __name__ == "__main__":
    main()

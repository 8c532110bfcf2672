#!/usr/bin/env python3
"""Draws a `strata build --profile` trace as an SVG timeline: one row per track (the
coordinator, then each worker), a bar per task span, a tick per cache hit, seconds along the
top. Usage: timeline.py TRACE.json OUT.svg [TITLE]"""

import html
import json
import sys

ROW, TOP, LEFT, WIDTH = 34, 56, 110, 1180
COLOURS = {  # by the kind of task its label names
    "image": "#4e79a7",
    "app": "#59a14f",
    "bin/build": "#e15759",
    "layer": "#f28e2b",
    "detect": "#b07aa1",
    "build": "#d4d4d4",
}


def kind(event):
    name = event["name"]
    if event["cat"] in ("phase", "build"):
        return event["name"] if event["name"] in COLOURS else "build"
    if name.endswith(": image") or name == "image":
        return "image"
    if name.endswith(": app") or name == "app":
        return "app"
    if "(bin/build)" in name or "bin/build" in name:
        return "bin/build"
    return "layer"


def main():
    trace, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "strata build"
    events = json.load(open(trace))["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    build = next(e for e in events if e["cat"] == "build")
    total = build["dur"] or 1
    scale = (WIDTH - LEFT - 20) / total
    rows = sorted(names)
    height = TOP + ROW * len(rows) + 40
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="DejaVu Sans, sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>',
    ]
    step = next(s for s in (5e4, 1e5, 2e5, 2.5e5, 5e5, 1e6, 2e6, 5e6, 1e7, 3e7, 6e7)
                if total / s <= 12)
    t = 0
    while t <= total:
        x = LEFT + t * scale
        svg.append(f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{height - 36}" '
                   'stroke="#eee"/>')
        svg.append(f'<text x="{x:.1f}" y="{TOP - 12}" text-anchor="middle" fill="#666">'
                   f'{t / 1e6:.1f}s</text>')
        t += step
    for i, tid in enumerate(rows):
        y = TOP + i * ROW
        svg.append(f'<text x="{LEFT - 8}" y="{y + ROW / 2 + 4}" text-anchor="end">'
                   f'{html.escape(names[tid])}</text>')
        for e in (e for e in events if e.get("tid") == tid and e["ph"] == "X"):
            x, w = LEFT + e["ts"] * scale, max(1.0, e["dur"] * scale)
            inset = 10 if e["cat"] == "build" else 3
            colour = COLOURS[kind(e)]
            svg.append(f'<rect x="{x:.1f}" y="{y + inset}" width="{w:.1f}" '
                       f'height="{ROW - 2 * inset}" fill="{colour}" rx="2">'
                       f'<title>{html.escape(e["name"])}</title></rect>')
            label = e["name"] if e["cat"] != "build" else ""
            if label and w > 6.8 * len(label) + 6:
                svg.append(f'<text x="{x + 3:.1f}" y="{y + ROW / 2 + 4}" fill="white">'
                           f'{html.escape(label)}</text>')
        for e in (e for e in events if e.get("tid") == tid and e["ph"] == "i"):
            x = LEFT + e["ts"] * scale
            svg.append(f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" y2="{y + ROW - 4}" '
                       'stroke="#333"/>')
    legend = [("declared layer", "layer"), ("opaque buildpack", "bin/build"),
              ("app", "app"), ("image export", "image"), ("detect", "detect")]
    x = LEFT
    for text, key in legend:
        svg.append(f'<rect x="{x}" y="{height - 26}" width="12" height="12" '
                   f'fill="{COLOURS[key]}"/>')
        svg.append(f'<text x="{x + 16}" y="{height - 16}">{text}</text>')
        x += 24 + 7 * len(text)
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

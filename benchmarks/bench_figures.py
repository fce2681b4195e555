"""The demo's saliency figures: a new figure per spectrum (v0.2) vs frames of one figure.

Usage: ``python benchmarks/bench_figures.py DEMO_OUT/saliency`` (the maps of a finished
``agnlens demo``). Peers, in the same process, on the same maps, each writing one PNG per map:

- ``Saliency.plot(i)`` + ``savefig`` per spectrum, without and with the zoom panels (v0.2's demo
  drew them without);
- :func:`agnlens.plot.saliency_frames.saliency_images` + ``png_bytes`` (what the demo does now),
  with and without the zoom panels.

CPU seconds are the number to compare on a shared machine (matplotlib draws on one core).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from agnlens.atomic import atomic_path, write_bytes
from agnlens.explain.result import Saliency
from agnlens.plot.saliency_frames import png_bytes, saliency_images


def main(folder: str) -> None:
    sal = Saliency.load(folder)
    out = Path(tempfile.mkdtemp(prefix="bench-figures-"))

    def new_figures(zoom: bool) -> None:
        for i, sid in enumerate(sal.spec_id):
            with atomic_path(out / f"figure{int(zoom)}" / f"{sid}.png") as tmp:
                sal.plot(i, zoom=zoom).figure.savefig(tmp, dpi=90, format="png")

    def frames(zoom: bool) -> None:
        for sid, image in zip(sal.spec_id, saliency_images(sal, zoom=zoom, dpi=90)):
            write_bytes(out / f"frames{int(zoom)}" / f"{sid}.png", png_bytes(image, dpi=90))

    sal.plot(0).figure.savefig(out / "warm-up.png")  # fonts and imports
    for name, run, zoom in (("new figure each, no zoom (v0.2 demo)", new_figures, False),
                            ("new figure each, zoom", new_figures, True),
                            ("frames, zoom (demo now)", frames, True),
                            ("frames, no zoom", frames, False)):
        wall, cpu = time.perf_counter(), time.process_time()
        run(zoom)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{name:38s} {len(sal)} figures: CPU {cpu:6.2f} s ({cpu / len(sal):.3f} s each), wall {wall:6.2f} s")
    print(f"figures in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-out/saliency")

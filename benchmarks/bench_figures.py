"""The demo's saliency figures: a new figure per spectrum vs frames of one figure, by resolution.

Usage: ``python benchmarks/bench_figures.py DEMO_OUT/saliency`` (the maps of a finished
``agnlens demo``). Peers, in the same process, on the same maps, each writing one file per map, all
on one colour scale (what the demo and ``agnlens explain`` draw):

- ``Saliency.plot(i, zoom=True)`` + ``savefig`` per spectrum, as PNG (the slow path), PDF and SVG
  (what ``--format pdf|svg`` adds beside the PNGs);
- :func:`agnlens.plot.saliency_frames.saliency_images` + ``png_bytes`` (what the demo does), at
  90 dpi (v0.3's resolution) and at the default :data:`agnlens.plot.save.DPI`.

CPU seconds are the number to compare on a shared machine (matplotlib draws on one core).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from agnlens.atomic import write_bytes
from agnlens.explain.result import Saliency
from agnlens.plot.saliency import attribution_label, shared_limit, shared_scale_note
from agnlens.plot.saliency_frames import png_bytes, saliency_images
from agnlens.plot.save import DPI, save_figure


def main(folder: str) -> None:
    sal = Saliency.load(folder)
    out = Path(tempfile.mkdtemp(prefix="bench-figures-"))
    vmax = shared_limit(sal.values)

    def new_figures(fmt: str, dpi: float) -> None:
        for i, sid in enumerate(sal.spec_id):
            label = f"{attribution_label(sal.method, sal.target[i])}\n{shared_scale_note(len(sal))}"
            fig = sal.plot(i, zoom=True, vmax=vmax, colorbar_label=label).figure
            save_figure(fig, out / f"figure-{fmt}" / f"{sid}.{fmt}", format=fmt, dpi=dpi, png=False)

    def frames(fmt: str, dpi: float) -> None:
        for sid, image in zip(sal.spec_id, saliency_images(sal, zoom=True, dpi=dpi, vmax=vmax)):
            write_bytes(out / f"frames{dpi:g}" / f"{sid}.png", png_bytes(image, dpi=dpi))

    sal.plot(0).figure.savefig(out / "warm-up.png")  # fonts and imports
    for name, run, fmt, dpi in (("new figure each, PNG", new_figures, "png", DPI),
                                ("new figure each, PDF", new_figures, "pdf", DPI),
                                ("new figure each, SVG", new_figures, "svg", DPI),
                                ("frames, PNG 90 dpi", frames, "png", 90),
                                (f"frames, PNG {DPI} dpi (demo now)", frames, "png", DPI)):
        wall, cpu = time.perf_counter(), time.process_time()
        run(fmt, dpi)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{name:38s} {len(sal)} figures: CPU {cpu:6.2f} s ({cpu / len(sal):.3f} s each), wall {wall:6.2f} s")
    print(f"figures in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-out/saliency")

"""Copy the README's screenshots of the Lab from the browser test's: ``.venv/bin/python
docs/screenshots.py`` after ``pytest -m browser`` (``tests/test_browser.py``).

The browser test saves every tab of the Lab at every width and theme as
``test-artifacts/browser/<width>-<theme>-<tab>.png``. This script takes one per tab at
1,400 px in JupyterLab Light, and the Compare tab in JupyterLab Dark, and writes them as
``docs/lab-<tab>.png`` (``docs/lab-compare-dark.png``), each scaled down to at most
:data:`MAX_WIDTH` pixels wide, cut to its top :data:`MAX_HEIGHT` pixels (the Calibration tab,
with its bias table, is several screens tall) and quantised to a palette until it is under
:data:`MAX_BYTES`, so that the PNGs committed under ``docs/`` stay small. It refuses to run
(exit status 1) when a screenshot is missing, naming it.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "test-artifacts" / "browser"
MAX_WIDTH = 900
MAX_HEIGHT = 1400
MAX_BYTES = 150_000
CHOSEN = {
    "1400-light-data.png": "lab-data.png",
    "1400-light-train.png": "lab-train.png",
    "1400-light-compare.png": "lab-compare.png",
    "1400-light-calibration.png": "lab-calibration.png",
    "1400-light-export.png": "lab-export.png",
    "1400-dark-compare.png": "lab-compare-dark.png",
}
"""``{the browser test's screenshot: the file under docs/}``."""


def shrink(
    image: Image.Image,
    *,
    max_width: int = MAX_WIDTH,
    max_height: int = MAX_HEIGHT,
    max_bytes: int = MAX_BYTES,
) -> bytes:
    """``image`` as PNG bytes, at most ``max_width`` wide (aspect kept, Lanczos) and cut to its
    top ``max_height`` pixels, with an octree palette of 256 colours and fewer (median cut
    merged the small colour swatches into greys), then narrower, until it
    is under ``max_bytes``."""
    image = image.convert("RGB")
    width = min(max_width, image.width)
    while True:
        height = max(1, round(image.height * width / image.width))
        scaled = image.resize((width, height), Image.Resampling.LANCZOS)
        scaled = scaled.crop((0, 0, width, min(height, max_height)))
        for colours in (256, 128, 64, 32):
            quantised = scaled.quantize(colours, method=Image.Quantize.FASTOCTREE, dither=0)
            buffer = io.BytesIO()
            quantised.save(buffer, format="PNG", optimize=True)
            if buffer.tell() < max_bytes:
                return buffer.getvalue()
        width = round(width * 0.85)


def main(source: Path = SOURCE, target: Path = HERE) -> int:
    missing = [name for name in CHOSEN if not (source / name).is_file()]
    if missing:
        print(
            f"missing in {source}: {', '.join(missing)}; run the browser test first: "
            ".venv/bin/python -m pytest -m browser tests/test_browser.py",
            file=sys.stderr,
        )
        return 1
    for name, out in CHOSEN.items():
        with Image.open(source / name) as image:
            data = shrink(image)
            size = image.size
        (target / out).write_bytes(data)
        with Image.open(target / out) as written:
            print(f"{name} {size[0]}x{size[1]} -> docs/{out} {written.width}x{written.height}, "
                  f"{len(data) / 1000:.0f} kB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Coverage-guided fuzzing of damaged segment images with atheris (``pip install -e .[fuzz]``).

Each input is one selector byte (which algorithm's specimen the image came from) and a segment
image. The seed corpus is the real specimens of ``tests/test_corruption.py`` (a segment per
shipped algorithm holding raw blocks, named, unique and array objects and one of each
container); libFuzzer mutates them. Every input is opened, verified (deep), inspected
read-only, every known object found, read and mutated, blocks and objects made and destroyed
(``test_corruption.run_image``). Any exception that is not segalloc's own (or the API's
documented ``TypeError`` of a type mismatch, ``KeyError`` of an absent key, ``IndexError`` /
``ValueError`` of an index out of range or a value not found) fails the run, as does a crash
or an input slower than ``-timeout``.

Run for a bounded time (what CI does)::

    python tests/fuzz/fuzz_segment.py -max_total_time=60

Extra libFuzzer options pass through; a corpus directory given as an argument is used (and
grown) instead of a temporary one seeded with the specimens. A failing input is written as
``crash-*``; replay it with ``python tests/fuzz/fuzz_segment.py crash-...``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["segalloc"]):
    import test_corruption as campaign

    import segalloc  # noqa: F401  (instrumented for coverage guidance)

#: libFuzzer's per-input time limit in seconds (an image should take milliseconds)
TIMEOUT = 10


def test_one_input(data: bytes) -> None:
    """One fuzz input: ``data[0]`` picks the algorithm, the rest is the segment image."""
    if not data:
        return
    spec = campaign.specimen(campaign.ALGORITHMS[data[0] % len(campaign.ALGORITHMS)])
    campaign.run_image(bytes(data[1:]), spec, bound=None)


def seed_corpus(directory: Path) -> None:
    """Write every specimen, selector byte first, into ``directory``."""
    for number, algorithm in enumerate(campaign.ALGORITHMS):
        image = campaign.specimen(algorithm).image
        (directory / f"specimen-{algorithm}").write_bytes(bytes([number]) + image)


def main(argv: list[str]) -> None:
    options = [arg for arg in argv[1:] if arg.startswith("-")]
    paths = [arg for arg in argv[1:] if not arg.startswith("-")]
    longest = 1 + max(len(campaign.specimen(a).image) for a in campaign.ALGORITHMS)
    if not any(arg.startswith("-max_len=") for arg in options):
        options.append(f"-max_len={longest}")
    if not any(arg.startswith("-timeout=") for arg in options):
        options.append(f"-timeout={TIMEOUT}")
    if not paths:
        corpus = Path(tempfile.mkdtemp(prefix="segalloc-fuzz-"))
        seed_corpus(corpus)
        paths = [str(corpus)]
    elif all(Path(path).is_dir() for path in paths) and not any(os.scandir(paths[0])):
        seed_corpus(Path(paths[0]))
    atheris.Setup([argv[0], *options, *paths], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

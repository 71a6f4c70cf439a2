"""The batch runner: execute the book's chapters with papermill under a profile.

    python -m mixuplib.book run --profile embedded            # every chapter, committed outputs
    python -m mixuplib.book run --profile paper --chapter 04_input_mixup

Profiles live in ``mixuplib/profiles.yml``. Chapters run one after another (never two
processes at once on a small machine). Each chapter executes into a temporary file that
replaces the output notebook only when the whole chapter succeeded, so a failure never
leaves a half-written notebook behind. The exit status is non-zero on failure, and the
message names the chapter and the cell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROFILES = Path(__file__).with_name("profiles.yml")
ROOT = Path(__file__).resolve().parent.parent


def load_profiles(path: Path = PROFILES) -> dict:
    """The profiles as a dict: ``{name: {description, output_dir, parameters, chapters}}``."""
    return yaml.safe_load(Path(path).read_text())


class ChapterFailed(RuntimeError):
    """A chapter raised; the message names the chapter and the failing cell."""


def run_chapter(source: Path, output: Path, parameters: dict, *, kernel: str = "python3") -> float:
    """Execute the notebook ``source`` with ``parameters`` into ``output``; return the wall time.

    The run happens in ``source``'s folder (relative paths in a chapter mean the same in
    every profile) and writes ``output`` atomically.
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(prefix=f".{source.stem}-", suffix=".ipynb", dir=output.parent, delete=False) as tmp:
        partial = Path(tmp.name)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(partial), parameters=parameters, cwd=str(source.parent),
                                   kernel_name=kernel, progress_bar=False, log_output=False)
        _strip_papermill_noise(partial)
        partial.replace(output)
    except papermill.PapermillExecutionError as err:
        where = _describe_failing_cell(partial)
        raise ChapterFailed(f"chapter {source.stem} failed in {where}: {err.ename}: {err.evalue}") from err
    except Exception as err:
        raise ChapterFailed(f"chapter {source.stem} failed: {type(err).__name__}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)
    return time.perf_counter() - start


def _describe_failing_cell(executed: Path) -> str:
    """'cell N (first line)', N counting the chapter's own cells from 1 (without the cells
    papermill adds), so it matches what a reader sees when opening the chapter."""
    cells = json.loads(executed.read_text())["cells"]
    failing = next(c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    added = ("injected-parameters", "papermill-error-cell-tag")
    own = [c for c in cells if not set(added) & set(c.get("metadata", {}).get("tags", []))]
    first_line = ("".join(failing["source"]).strip().splitlines() or [""])[0]
    return f"cell {own.index(failing) + 1} ({first_line[:60]!r})"


def _strip_papermill_noise(path: Path) -> None:
    """Drop per-run timestamps papermill adds, so re-running an unchanged chapter changes
    only what the chapter itself printed."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    nb.get("metadata", {}).pop("papermill", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def run_profile(profile: str, chapters: list[str] | None = None, *, notebooks: Path = ROOT / "notebooks",
                profiles: dict | None = None) -> int:
    """Run ``chapters`` (default: all of the profile's) and print each wall time; return an exit status."""
    profiles = profiles or load_profiles()
    if profile not in profiles:
        print(f"unknown profile {profile!r}; choose from {sorted(profiles)}", file=sys.stderr)
        return 2
    spec = profiles[profile]
    names = chapters or list(spec["chapters"])
    unknown = [n for n in names if n not in spec["chapters"]]
    if unknown:
        print(f"profile {profile!r} has no chapter {unknown}; it has {list(spec['chapters'])}", file=sys.stderr)
        return 2
    out_dir = (notebooks.parent / spec["output_dir"]).resolve()
    total = 0.0
    for name in names:
        parameters = {**(spec.get("parameters") or {}), **(spec["chapters"][name] or {})}
        try:
            seconds = run_chapter(notebooks / f"{name}.ipynb", out_dir / f"{name}.ipynb", parameters)
        except ChapterFailed as err:
            print(f"FAILED: {err}", file=sys.stderr)
            return 1
        total += seconds
        print(f"{name:32s} {seconds:7.1f} s  -> {os.path.relpath(out_dir / f'{name}.ipynb')}", flush=True)
    print(f"{'total':32s} {total:7.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixuplib.book", description="Execute the book's chapters under a profile.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapters with papermill")
    run.add_argument("--profile", default="embedded")
    run.add_argument("--chapter", action="append", help="a chapter name (repeatable); default: all of the profile's")
    sub.add_parser("profiles", help="list the profiles")
    args = parser.parse_args(argv)
    if args.command == "profiles":
        for name, spec in load_profiles().items():
            print(f"{name:10s} {spec['description']}")
        return 0
    return run_profile(args.profile, args.chapter)


if __name__ == "__main__":
    sys.exit(main())

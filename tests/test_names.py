"""Every file, chapter and mixuplib name that the book's words mention exists.

Comments and docstrings in the code, the book's configuration, its Markdown pages and the
chapters' prose name files (``tests/test_book.py``), chapters (``04_adamixup``) and library
objects (``mixuplib.batches.TensorBatches``). A rename that forgets them leaves words that send
a reader nowhere; this test finds them.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

import mixuplib

ROOT = Path(__file__).resolve().parent.parent

# Files of other projects that the book's words cite as models to follow.
ELSEWHERE = {"transforms/v2/_augment.py", "data/mixup.py", "model.py", "train.py"}
# Names of files a reader or a run writes: examples, placeholders, and the paper profile's
# records (results/paper/), which exist only after a GPU run.
WRITTEN = {"your_script.py", "out.json", "p.yaml", "params.yaml", "out.ipynb", "folder/plan.json", "train_ddp.py", "results_dir/chapter.json"}
FILE = re.compile(r"(?<![\w/.-])((?:\.\./)?[\w.-]+(?:/[\w.-]+)*\.(?:py|ipynb|yml|yaml|md|json|toml|cfg|sh|bib|txt))\b")
CHAPTER = re.compile(r"(?<![\w/-])(0\d_[a-z][a-z0-9_]*[a-z0-9])\b")
DOTTED = re.compile(r"\bmixuplib(?:\.[A-Za-z_]\w*)+")


def _python_words(path: Path) -> str:
    """The comments and docstrings of a Python file."""
    source = path.read_text()
    words = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            words.append(ast.get_docstring(node) or "")
    return "\n".join(words)


def _notebook_words(path: Path) -> str:
    """The prose and the code comments of a chapter."""
    words = []
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            words.append(source)
        else:
            words += [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
    return "\n".join(words)


def _texts() -> dict[str, str]:
    texts = {}
    for pattern in ("mixuplib/*.py", "benchmarks/*.py", "tests/*.py", "conftest.py"):
        texts.update({str(p.relative_to(ROOT)): _python_words(p) for p in sorted(ROOT.glob(pattern))})
    for pattern in ("_config.yml", "_toc.yml", "mixuplib/profiles.yml", "book/*.md", "README.md", "Makefile", ".ci/run"):
        texts.update({str(p.relative_to(ROOT)): p.read_text() for p in sorted(ROOT.glob(pattern))})
    texts.update({str(p.relative_to(ROOT)): _notebook_words(p) for p in sorted(ROOT.glob("notebooks/*.ipynb"))})
    return texts


def _file_exists(name: str, where: Path) -> bool:
    if name in ELSEWHERE or name in WRITTEN or "*" in name:
        return True
    if name.startswith(("results/paper/", "shared/", "../shared/")):  # a GPU run's records; the notes beside the repository
        return True
    stripped = name.removeprefix("../")
    candidates = [ROOT / name, where.parent / name, ROOT / stripped, ROOT.parent / stripped]
    candidates += [ROOT / folder / name for folder in ("mixuplib", "tests", "benchmarks", "notebooks", "book", "results")]
    return any(c.exists() for c in candidates)


def _resolves(dotted: str) -> bool:
    """Whether a dotted name under mixuplib names a module, or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


TEXTS = _texts()


@pytest.mark.parametrize("source", sorted(TEXTS))
def test_named_files_chapters_and_modules_exist(source):
    text = TEXTS[source]
    where = ROOT / source
    missing = sorted({m for m in FILE.findall(text) if not _file_exists(m, where)})
    missing += sorted({f"chapter {c}" for c in CHAPTER.findall(text) if not (ROOT / "notebooks" / f"{c}.ipynb").exists()})
    missing += sorted({d for d in DOTTED.findall(text) if not _resolves(d.rstrip("."))})
    assert not missing, f"{source} names what does not exist: {missing}"


def test_the_checker_finds_stale_names(tmp_path):
    assert not _file_exists("tests/test_book_files.py", ROOT / "README.md")
    assert CHAPTER.findall("run --chapter 04_input_mixup") == ["04_input_mixup"]
    assert not (ROOT / "notebooks" / "04_input_mixup.ipynb").exists()
    assert _resolves("mixuplib.batches.TensorBatches") and not _resolves("mixuplib.data.TensorBatches")
    assert mixuplib.Recipe and _resolves("mixuplib.Recipe")

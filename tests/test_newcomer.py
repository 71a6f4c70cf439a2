"""A newcomer's three ways in: without Debian, plain papermill on a GPU box, and Colab.

Each is exercised here, offline: Fashion-MNIST downloaded from a real local HTTP mirror, the
make targets with apt-get and dpkg hidden, papermill fed the runner's parameters as YAML, and
the Colab setup cell run with ``google.colab`` faked, installing mixuplib from a local copy.
"""

import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
import yaml

from mixuplib import book, cost, data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server on localhost serving a folder of tmp_path: (its URL, the folder)."""
    served = tmp_path / "mirror"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served
    server.shutdown()


def test_fashion_mnist_downloads_from_a_mirror_and_checks_each_file(tmp_path, mirror, capsys):
    url, served = mirror
    for packed in data.DEBIAN_FASHION_MNIST.glob("*.gz"):
        shutil.copy(packed, served)
    root = tmp_path / "data"
    assert book.main(["data", "--root", str(root), "--mirror", url, "--debian", str(tmp_path / "nowhere")]) == 0
    assert "downloaded through torchvision" in capsys.readouterr().out
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.FASHION_MNIST_SHA256)  # nothing half-written left
    for name, digest in data.FASHION_MNIST_SHA256.items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == digest
    assert data.fetch_fashion_mnist(root, source=tmp_path / "nowhere", mirror=url) == "already there"
    split = data.fashion_mnist(root, source=tmp_path / "nowhere")  # read offline, Debian's package not needed
    assert split.x_train.shape == (60000, 1, 28, 28)


def test_a_corrupt_download_stops_with_its_name(tmp_path, mirror, capsys):
    url, served = mirror
    for packed in data.DEBIAN_FASHION_MNIST.glob("*.gz"):
        shutil.copy(packed, served)
    import gzip

    with gzip.open(served / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"not the labels")
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.*SHA-256"):
        data.fetch_fashion_mnist(root, source=tmp_path / "nowhere", mirror=url)
    assert not (root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()
    assert book.main(["data", "--root", str(tmp_path / "other"), "--mirror", url + "missing/", "--debian", str(tmp_path)]) == 1
    assert "Fashion-MNIST: could not be had" in capsys.readouterr().err
    with pytest.raises(ValueError, match="mirror must be an http:// or https:// URL prefix ending in '/'"):
        data.fetch_fashion_mnist(root, source=tmp_path / "nowhere", mirror="file:///usr/share/datasets/fashion-mnist")


def fake_tools(folder: Path, tools: dict[str, str]) -> str:
    """A PATH of ``folder`` holding one shell script per tool (name -> body) and links to
    what make's recipes call; nothing else, so apt-get, dpkg, chromium and npm are absent."""
    folder.mkdir()
    for name in ("bash", "sh", "make", "id", "paste", "cat", "env"):
        if name not in tools:
            (folder / name).symlink_to(shutil.which(name))
    for name, body in tools.items():
        (folder / name).write_text(f"#!/bin/bash\n{body}\n")
        (folder / name).chmod(0o755)
    return str(folder)


def make_system(path: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": str(tmp_path)}
    return subprocess.run([shutil.which("make"), "-s", "-C", str(ROOT), "system", f"FASHION_MNIST_DEB={tmp_path / 'nowhere'}"],
                          capture_output=True, text=True, env=env)


def test_make_system_without_apt_goes_on_and_says_what_it_skips(tmp_path):
    done = make_system(fake_tools(tmp_path / "bin", {}), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("system: no apt-get, or neither root nor sudo") for line in lines)
    assert "Fashion-MNIST is downloaded through torchvision" in lines[0]
    assert "skips the browser check" in lines[1] and "skips the browser check" in lines[2]


def test_make_system_installs_through_apt_only_as_root_or_with_sudo(tmp_path):
    log = tmp_path / "apt.log"
    apt = {"apt-get": f'echo "apt-get $*" >> {log}', "dpkg": "exit 0"}
    user = make_system(fake_tools(tmp_path / "user", {**apt, "id": "echo 1000", "sudo": "exit 1"}), tmp_path)
    assert user.returncode == 0 and not log.exists() and len(user.stdout.splitlines()) == 3
    root = make_system(fake_tools(tmp_path / "root", {**apt, "id": "echo 0"}), tmp_path)
    assert root.returncode == 0, root.stderr
    assert log.read_text().splitlines() == ["apt-get update -q", "apt-get install -y -q dataset-fashion-mnist chromium npm"]


PROFILES = {"gpu": {"description": "", "output_dir": "out",
                    "parameters": {"device": "cuda", "training": {"epochs": 200, "lr": 0.1}},
                    "chapters": {"ch": {"training": {"lr": 0.03}, "levels": {0.2: {"alpha": 8.0}}, "seeds": [0, 1]}}}}


def test_params_yaml_makes_papermill_inject_what_the_runner_injects(tmp_path):
    """The runner's kernel and plain ``papermill -f params.yaml`` see the same parameters,
    nested dicts and float keys included."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("device = 'cpu'\ntraining = {}\nlevels = {}\nseeds = [0]", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(repr((device, training, levels, seeds)))")]
    nbformat.write(nb, tmp_path / "ch.ipynb")
    profiles = {"gpu": {**PROFILES["gpu"], "output_dir": str(tmp_path / "runner")}}
    assert book.run_profile("gpu", notebooks=tmp_path, profiles=profiles) == 0
    parameters = book.chapter_parameters("gpu", "ch", profiles=profiles)
    assert parameters == {"device": "cuda", "training": {"epochs": 200, "lr": 0.03}, "levels": {0.2: {"alpha": 8.0}}, "seeds": [0, 1]}
    (tmp_path / "p.yaml").write_text(book.parameters_yaml(parameters))
    papermill = Path(sys.executable).with_name("papermill")
    subprocess.run([str(papermill), str(tmp_path / "ch.ipynb"), str(tmp_path / "plain.ipynb"), "-f", str(tmp_path / "p.yaml"),
                    "--cwd", str(tmp_path)], check=True, capture_output=True)

    def printed(path):
        return nbformat.read(path, as_version=4).cells[-1].outputs[0].text

    assert printed(tmp_path / "plain.ipynb") == printed(tmp_path / "runner" / "ch.ipynb") != ""


@pytest.mark.parametrize("profile", ["embedded", "paper", "smoke"])
def test_params_command_prints_each_chapters_parameters(profile, capsys):
    for chapter in book.load_profiles()[profile]["chapters"]:
        assert book.main(["params", "--profile", profile, "--chapter", chapter]) == 0
        assert yaml.safe_load(capsys.readouterr().out) == book.chapter_parameters(profile, chapter)
    assert book.main(["params", "--profile", profile, "--chapter", "99_nowhere"]) == 2
    assert "has no chapter ['99_nowhere']" in capsys.readouterr().err


def test_colab_setup_cell_installs_mixuplib_and_the_chapter_starts(tmp_path, monkeypatch):
    """Chapter 1's first cells as Colab runs them: ``google.colab`` present, the setup cell's
    ``%pip install`` pointed at a local copy of the package (``MIXUPLIB_SOURCE``), then the
    parameters and the imports. The install goes to a folder of its own (so this environment's
    editable mixuplib stays), which the kernel imports from."""
    from nbclient import NotebookClient

    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "mixuplib", source / "mixuplib", ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    site.mkdir()  # before the kernel starts: a PYTHONPATH folder that is missing then is never searched
    # The dependencies are this environment's; no build isolation, so nothing is fetched.
    for name, value in {"MIXUPLIB_SOURCE": source.as_uri(), "PIP_TARGET": str(site), "PIP_NO_DEPS": "1",
                        "PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1", "PYTHONPATH": str(site)}.items():
        monkeypatch.setenv(name, value)
    chapter = nbformat.read(ROOT / "notebooks" / "01_erm_to_mixup.ipynb", as_version=4)
    code = [c for c in chapter.cells if c.cell_type == "code"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')")]
    nb.cells += [nbformat.v4.new_code_cell(c.source) for c in code[:3]]  # setup, parameters, imports
    nb.cells.append(nbformat.v4.new_code_cell("print(mx.__file__, book.download, book.name)"))
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    printed = nb.cells[-1].outputs[0].text.split()
    assert printed == [str(site / "mixuplib" / "__init__.py"), "True", "01_erm_to_mixup"]  # in Colab, data sets download
    assert (site / "mixuplib" / "profiles.yml").exists()
    assert json.loads((next(site.glob("mixuplib-*.dist-info")) / "direct_url.json").read_text())["url"] == source.as_uri()


def test_readme_shows_the_paper_cost_table_the_script_prints():
    """README's GPU-hours estimate is the output of benchmarks/paper_cost.py, not a copy that drifts."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import paper_cost
    finally:
        sys.path.pop(0)
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- paper-cost -->\n", 1)[1].split("<!-- /paper-cost -->", 1)[0]
    assert shown == paper_cost.table()
    rows = {r["chapter"]: r for r in cost.estimate(cost.measured(paper_cost.GPU))}
    assert set(rows) == set(book.load_profiles()["paper"]["chapters"]) - {"08_which_mixup"}  # the summary trains nothing
    assert rows["03_manifold_mixup"]["runs"] == 9 and rows["07_semi_supervised"]["epochs"] == "1000"  # 3 x 3 seeds; 1000 passes


def test_a_chapter_table_adds_up_to_its_readme_row_and_a_missing_record_is_named(tmp_path):
    gpu = cost.measured(ROOT / "results" / "gpu")
    row = cost.estimate(gpu, ["02_input_mixup"])[0]
    table = cost.chapter_table("02_input_mixup", gpu, caption="c")
    assert f"<td>{row['hours']:.2f}</td>" in table._repr_html_() and f"<td>{row['runs']}</td>" in table._repr_html_()
    with pytest.raises(FileNotFoundError, match="gpu_check.json is missing"):
        cost.measured(tmp_path)
    with pytest.raises(ValueError, match="chapter must be one with a run plan"):
        cost.runs_of("08_which_mixup", {})

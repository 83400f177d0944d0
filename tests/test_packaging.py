"""The wheel: built from this checkout with the project's own build backend (offline, no
build isolation), it holds every module and the corpus manifests, and an installation of it
alone (not this source tree) lists the corpora."""

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools", minversion="77", reason="building the wheel needs setuptools >= 77 "
                        "(the test extra installs it)")
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, PIP_NO_INPUT="1"))
    assert build.returncode == 0, build.stdout + build.stderr
    (path,) = out.glob("rwthlm_py-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_every_manifest(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "rwthlm_py").rglob("*.py")}
    manifests = {f"rwthlm_py/corpus_manifests/{path.parent.name}/manifest.toml"
                 for path in (ROOT / "corpora").glob("*/manifest.toml")}
    assert manifests and modules <= names and manifests <= names, sorted((modules | manifests) - names)


@pytest.mark.slow
def test_an_installed_wheel_lists_the_corpora(wheel, tmp_path):
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                              str(site), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    listing = subprocess.run([sys.executable, "-c", "import sys, rwthlm_py.cli as cli; "
                              "print(cli.__file__); sys.exit(cli.main(['corpora', 'list']))"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, PYTHONPATH=str(site)))
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0].startswith(str(site))  # the installed copy, not this checkout
    for name in ("ptb", "wikitext2", "gutenberg"):
        assert any(line.startswith(f"{name}: ") for line in listing.stdout.splitlines()[1:]), listing.stdout

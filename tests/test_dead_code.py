"""Code nothing calls is gone, and each benchmark has one home: what a new engineer reads is what runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def test_uncalled_functions_are_gone() -> None:
    import kit.documents.store
    import kit.storage.keyfiles

    assert not hasattr(kit.storage.keyfiles, "load_or_create")
    assert not hasattr(kit.documents.store.Catalog, "generations_of")


def test_packaged_data_exists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for package, patterns in project["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches no file"


def test_one_serving_benchmark() -> None:
    assert (ROOT / "kit" / "bench" / "serving.py").is_file()
    assert not (ROOT / "benchmarks" / "serving.py").exists()


def test_documents_benchmark_is_found_where_it_lives() -> None:
    from kit.cli.main import cli

    source = (ROOT / "kit" / "cli" / "bench.py").read_text(encoding="utf-8")
    assert "kit.bench.retrieval" not in source
    result = CliRunner().invoke(cli, ["bench", "rag", "--help"])
    assert result.exit_code == 0, result.output

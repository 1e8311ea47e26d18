"""The one reader module: whole files, headers, folders of part files, and that nothing else opens data files."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lmworks.errors import DataError
from lmworks.readers import FORMATS, data_files, header, read_frame

SRC = Path(__file__).resolve().parents[1] / "src" / "lmworks"
#: Files lmworks reads that a user does not write: packaged datasets, a model directory's own price copy.
OWN_FILES = {"datasets.py", "advisor/advisor.py"}


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_reads_whole_and_gives_its_header(tmp_path, suffix):
    frame = pd.DataFrame({"id": [7, 8, 9], "text": ["a", "b", "c"]})
    path = tmp_path / f"data{suffix}"
    fmt = FORMATS[suffix]
    if fmt == "csv":
        frame.to_csv(path, index=False, sep=";")  # a European spreadsheet's export: sniffed
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    assert header(path) == ["id", "text"]
    read = read_frame(path).drop(columns="__line__", errors="ignore")
    assert list(read["text"]) == ["a", "b", "c"] and list(read.index) == [0, 1, 2]
    # CSV cells stay strings ("007" survives); JSONL and Parquet keep their numbers
    assert list(read["id"]) == (["7", "8", "9"] if fmt == "csv" else [7, 8, 9])


def test_an_empty_file_is_an_error_unless_allowed(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("file,row,drop\n")
    with pytest.raises(DataError, match=r"empty\.csv: no rows"):
        read_frame(path)
    assert list(read_frame(path, allow_empty=True).columns) == ["file", "row", "drop"]


def test_recbole_atomic_files_only_when_asked(tmp_path):
    path = tmp_path / "ml.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\n1\t2\t5\n")
    assert read_frame(path, atomic=True).to_dict("records") == [{"user_id": "1", "item_id": "2", "rating": "5"}]
    with pytest.raises(DataError, match="unsupported file type '.inter'"):
        read_frame(path)


def test_a_folder_of_parts_skips_markers_and_refuses_mixed_types(tmp_path):
    (tmp_path / "parts").mkdir()
    for name in ("b.ndjson", "a.jsonl", "_SUCCESS", ".a.jsonl.crc"):
        (tmp_path / "parts" / name).write_text('{"text": "x"}\n')
    files, fmt = data_files(tmp_path / "parts")
    assert fmt == "jsonl" and [Path(f).name for f in files] == ["a.jsonl", "b.ndjson"]
    assert data_files(str(tmp_path / "parts" / "*.ndjson"))[0] == [str((tmp_path / "parts" / "b.ndjson").resolve())]
    (tmp_path / "parts" / "c.csv").write_text("text\nx\n")
    with pytest.raises(DataError, match=r"expected files of one type .*\['.csv', '.jsonl', '.ndjson'\]"):
        data_files(tmp_path / "parts")
    with pytest.raises(DataError, match="file not found"):
        data_files(tmp_path / "nowhere")


def test_only_the_reader_module_opens_data_files():
    """One reader per format: no other module calls pandas' or pyarrow's file readers on a user's file.

    A line marked ``# own output`` reads back what lmworks itself just wrote (a Ray job's part files).
    """
    pattern = re.compile(r"\b(pd\.read_(csv|json|parquet|table)|pq\.ParquetFile|pq\.read_table)\(")
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name in OWN_FILES | {"readers.py"}:
            continue
        offenders += [f"{name}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)
                      and not line.rstrip().endswith("# own output")]
    assert not offenders, f"read data files through lmworks.readers: {offenders}"

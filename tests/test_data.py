import json

import pandas as pd
import pytest

from lmworks.data import iter_chunks, read_dataset, split_dataset
from lmworks.errors import DataError


def write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_reads_csv_jsonl_parquet_identically(tmp_path):
    frame = pd.DataFrame({"text": ["good film", "bad film", "ok"], "label": ["pos", "neg", "pos"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    got = [read_dataset(tmp_path / f"d.{ext}") for ext in ("csv", "jsonl", "parquet")]
    for ds in got:
        assert ds.texts == ["good film", "bad film", "ok"]
        assert ds.labels == ["pos", "neg", "pos"]


def test_numeric_labels_normalised(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0.0}\n')
    write_csv(tmp_path / "d.csv", ["a,1", "b,0"])
    assert read_dataset(tmp_path / "d.jsonl").labels == ["1", "0"]
    assert read_dataset(tmp_path / "d.csv").labels == ["1", "0"]


def test_custom_columns(tmp_path):
    write_csv(tmp_path / "d.csv", ["hello,x"], header="review,sentiment")
    ds = read_dataset(tmp_path / "d.csv", text_column="review", label_column="sentiment")
    assert ds.texts == ["hello"] and ds.labels == ["x"]


def test_missing_file():
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_dataset("nope.csv")


def test_unsupported_extension(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        read_dataset(tmp_path / "d.xlsx")


def test_missing_column_names_file_and_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a,b"], header="body,label")
    with pytest.raises(DataError, match=r"d.csv: column 'text' not found \(columns: body, label\)"):
        read_dataset(path)


def test_empty_text_names_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["good,pos", "  ,neg"])
    with pytest.raises(DataError, match=r"d.csv row 2: column 'text' is empty"):
        read_dataset(path)


def test_missing_label_names_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["good,pos", "fine,"])
    with pytest.raises(DataError, match=r"d.csv row 2: column 'label' is empty"):
        read_dataset(path)


def test_non_string_text_in_jsonl_names_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n\n{"text": 42, "label": "b"}\n')
    with pytest.raises(DataError, match=r"d.jsonl line 3: column 'text' must be a string, got int"):
        read_dataset(path)


def test_null_text_in_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": null, "label": "a"}\n')
    with pytest.raises(DataError, match=r"line 1: column 'text' is missing"):
        read_dataset(path)


def test_malformed_json_names_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"d.jsonl line 2: invalid JSON"):
        read_dataset(path)


def test_encoding_error_is_one_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ncaf\xe9 au lait,pos\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_dataset(path)
    message = str(err.value)
    assert "d.csv: not valid utf-8 text" in message and "--encoding" in message and "\n" not in message
    assert read_dataset(path, encoding="latin-1").texts == ["café au lait"]


def test_empty_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("")
    with pytest.raises(DataError, match="file is empty"):
        read_dataset(path)
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="no rows"):
        read_dataset(path)


def test_multi_label_from_string_and_list(tmp_path):
    write_csv(tmp_path / "d.csv", ['"a|b",', "x,a"], header="label,text")
    (tmp_path / "d.jsonl").write_text('{"text": "t", "label": ["b", "a"]}\n{"text": "u", "label": []}\n')
    csv_ds = read_dataset(tmp_path / "d.csv", multi_label=True, text_column="label", label_column="text")
    assert csv_ds.labels == [[], ["a"]]
    ds = read_dataset(tmp_path / "d.jsonl", multi_label=True)
    assert ds.labels == [["a", "b"], []]


def test_list_label_without_multi_label_flag(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "t", "label": ["b", "a"]}\n')
    with pytest.raises(DataError, match="pass --multi-label"):
        read_dataset(tmp_path / "d.jsonl")


def test_chunks_keep_row_numbers(tmp_path):
    rows = [f"text {i},{i % 2}" for i in range(25)] + [",1"]
    path = write_csv(tmp_path / "d.csv", rows)
    chunks = list(iter_chunks(path, chunk_size=10))
    assert [len(c) for c in chunks] == [10, 10, 6]
    from lmworks.data import clean_texts

    with pytest.raises(DataError, match="row 26"):
        clean_texts(path, chunks[-1], "text")


def test_split_is_stratified_and_reproducible():
    texts = [f"t{i}" for i in range(100)]
    labels = ["a"] * 80 + ["b"] * 20
    a = split_dataset(texts, labels, fraction=0.2, seed=3)
    b = split_dataset(texts, labels, fraction=0.2, seed=3)
    assert a == b
    assert sorted(a[3]).count("b") == 4 and len(a[2]) == 20


def test_jsonl_records_json_roundtrip(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"é {i}", "label": "x"}) for i in range(3)))
    assert read_dataset(path).texts[0] == "é 0"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_csv_delimiter_is_detected_from_the_header(tmp_path, delimiter, caplog):
    import logging

    path = tmp_path / "export.csv"
    rows = [("review", "stars"), ("great; really, great", "5"), ("awful", "1")]
    path.write_text("\n".join(delimiter.join(f'"{c}"' if delimiter in c or "," in c else c for c in row)
                              for row in rows) + "\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="lmworks"):
        data = read_dataset(path, text_column="review", label_column="stars")
    assert data.texts == ["great; really, great", "awful"] and data.labels == ["5", "1"]
    assert f"detected {delimiter!r} as the CSV delimiter" in caplog.text


def test_wrong_explicit_delimiter_names_the_one_in_the_header(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("review;stars\ngood;5\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'review' not found \(columns: review;stars\); the header holds "
                                        r"';': pass --delimiter ';'"):
        read_dataset(path, text_column="review", label_column="stars", delimiter=",")
    assert read_dataset(path, text_column="review", label_column="stars", delimiter=";").labels == ["5"]


def test_comma_files_with_other_characters_in_the_header_stay_comma(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text('text,label\n"a; b | c",x\n"d",y\n', encoding="utf-8")
    assert read_dataset(path).texts == ["a; b | c", "d"]


def test_atomic_outputs_get_the_usual_permissions_not_the_temp_files(tmp_path):
    import os
    import stat

    from lmworks.atomic import write_text_atomic

    mask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "out.json", "{}\n")
        plain = tmp_path / "plain.json"
        plain.write_text("{}\n")
    finally:
        os.umask(mask)
    mode = stat.S_IMODE((tmp_path / "out.json").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644

import pytest

from clarion.errors import InputError
from clarion.idlists import IdListFormat, IdListReader


def read(fmt: IdListFormat, data: bytes, chunk: int = 7) -> list[str]:
    reader = IdListReader(fmt)
    try:
        for i in range(0, len(data), chunk):  # lines split across chunks on purpose
            reader.feed(data[i : i + chunk])
        reader.finish()
        return [u for batch in reader.chunks(2) for u in batch]
    finally:
        reader.close()


def test_reads_plain_lines_skipping_blanks() -> None:
    assert read(IdListFormat.LINES, b"u1\n\n u2 \nu3") == ["u1", "u2", "u3"]


def test_reads_ndjson_strings_and_objects() -> None:
    data = b'"u1"\n{"id": "u2"}\n{"follower_id": "u3", "x": 1}\n'
    assert read(IdListFormat.NDJSON, data) == ["u1", "u2", "u3"]


def test_reads_csv_first_column_and_skips_a_header() -> None:
    assert read(IdListFormat.CSV, b'follower_id,since\nu1,2020\n"u2",2021\n') == ["u1", "u2"]


def test_refuses_the_whole_list_naming_bad_lines() -> None:
    with pytest.raises(InputError) as exc:
        read(IdListFormat.NDJSON, b'"ok"\n{"nope": 1}\n"has space"\n"fine"\n')
    assert [p.field for p in exc.value.problems] == ["body (line 2)", "body (line 3)"]


def test_reports_at_most_twenty_lines_and_counts_the_rest() -> None:
    with pytest.raises(InputError) as exc:
        read(IdListFormat.LINES, b"a b\n" * 25)
    assert len(exc.value.problems) == 21
    assert "5 more" in exc.value.problems[-1].reason


def test_format_from_content_type_and_filename() -> None:
    assert IdListFormat.from_content_type("text/csv; charset=utf-8") is IdListFormat.CSV
    assert IdListFormat.from_content_type("application/json") is None
    assert IdListFormat.from_filename("f.JSONL") is IdListFormat.NDJSON
    assert IdListFormat.from_filename("f.txt") is IdListFormat.LINES

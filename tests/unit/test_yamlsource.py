"""The bounded, position-keeping YAML loader (testbed.yamlsource)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.errors import ValidationError
from testbed.yamlsource import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    format_path,
    load_yaml,
    parse_yaml_text,
)


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_yaml_text(text, "doc.yaml")


def problems(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(ValidationError) as info:
        parse(text)
    return [(d.line, d.column, d.message) for d in info.value.diagnostics]


def test_plain_data_and_positions_of_keys_and_values() -> None:
    document = parse("name: net\nhosts:\n  web:\n    ports: [80, 443]\n")
    assert document.data == {"name": "net", "hosts": {"web": {"ports": [80, 443]}}}
    assert document.key_marks[("hosts", "web")] == (3, 3)
    assert document.value_marks[("hosts", "web", "ports")] == (4, 12)
    assert document.value_marks[("hosts", "web", "ports", 1)] == (4, 17)
    assert document.locate(("hosts", "web", "ports", 1)) == (4, 17)
    assert document.locate(("hosts", "web"), at_key=True) == (3, 3)


def test_locate_falls_back_to_the_nearest_ancestor() -> None:
    document = parse("hosts:\n  web: {segment: lan}\n")
    assert document.locate(("hosts", "web", "services", 0, "port")) == (2, 8)
    assert document.locate(("nowhere",)) == (1, 1)


def test_diagnostic_carries_file_position_path_and_hint() -> None:
    document = parse("hosts:\n  web: {segmnet: lan}\n")
    diagnostic = document.diagnostic(("hosts", "web", "segmnet"), "unknown key", hint="h",
                                     at_key=True)
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == ("doc.yaml", 2, 9)
    assert diagnostic.path == "hosts.web.segmnet" and diagnostic.hint == "h"


def test_format_path() -> None:
    assert format_path(("hosts", "web", "services", 0, "port")) == "hosts.web.services[0].port"
    assert format_path((0, "a")) == "[0].a"
    assert format_path(()) == ""


def test_yaml_scalars_resolve_but_dates_stay_text() -> None:
    document = parse("a: 1\nb: 2.5\nc: true\nd: null\ne: 2024-01-02\nf: '010'\n")
    assert document.data == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "2024-01-02",
                             "f": "010"}


def test_numeric_keys_become_strings() -> None:
    assert parse("5: x\n").data == {"5": "x"}


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['id']",
                                 "!!python/name:os.system", "!!binary aGVsbG8=",
                                 "!!set {a, b}", "!custom 1"])
def test_tags_beyond_plain_data_are_refused_and_never_constructed(tag: str) -> None:
    found = problems(f"name: x\nvalue: {tag}\n")
    assert len(found) == 1
    line, column, message = found[0]
    assert (line, column) == (2, 8)
    assert "is not allowed" in message


def test_every_tag_is_reported() -> None:
    found = problems("a: !!python/name:os.system\nb: [!x 1, !y 2]\n")
    assert [(line, column) for line, column, _ in found] == [(1, 4), (2, 5), (2, 11)]


def test_explicit_plain_tags_are_fine() -> None:
    assert parse("a: !!str 5\nb: !!int '7'\n").data == {"a": "5", "b": 7}


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    [(line, column, message)] = problems("a: 1\nb: 2\na: 3\n")
    assert (line, column) == (3, 1)
    assert "duplicate key 'a' (first defined on line 1)" in message


def test_merge_keys_are_refused() -> None:
    [(line, _column, message)] = problems("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert line == 3 and "merge keys" in message


def test_complex_keys_are_refused() -> None:
    [(_line, _column, message)] = problems("? [a, b]\n: 1\n")
    assert "keys must be plain scalars" in message


def test_syntax_errors_are_located() -> None:
    [(line, _column, message)] = problems("a: [1, 2\nb: 3\n")
    assert line >= 2 and message.startswith("not valid YAML")


def test_several_documents_are_refused() -> None:
    [(_line, _column, message)] = problems("a: 1\n---\nb: 2\n")
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_documents(text: str) -> None:
    [(_line, _column, message)] = problems(text)
    assert message == "file is empty"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just words\n", "42\n"])
def test_the_document_must_be_a_mapping(text: str) -> None:
    [(_line, _column, message)] = problems(text)
    assert "must be a mapping" in message


def test_aliases_that_stay_small_are_allowed() -> None:
    document = parse("a: &x [1, 2]\nb: *x\n")
    assert document.data == {"a": [1, 2], "b": [1, 2]}


def test_alias_bomb_is_refused_without_expanding() -> None:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for previous, letter in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{letter}: &{letter} [" + ", ".join([f"*{previous}"] * 10) + "]")
    [(_line, _column, message)] = problems("\n".join(lines) + "\n")
    assert "alias bomb" in message


def test_nesting_limit() -> None:
    fine = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert parse(fine).data
    [(line, column, message)] = problems("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
                                         + "\n")
    assert (line, column) == (1, 4 + MAX_DEPTH) and "nesting deeper" in message


def test_absurd_nesting_does_not_blow_the_stack() -> None:
    [(_line, _column, message)] = problems("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert "nest" in message


def test_load_yaml_reads_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes("\ufeffname: café\n".encode())
    assert load_yaml(path).data == {"name": "café"}


def test_load_yaml_locates_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(ValidationError) as info:
        load_yaml(path)
    [diagnostic] = info.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (2, 17)
    assert "not UTF-8" in diagnostic.message


def test_load_yaml_refuses_binary_missing_directories_and_huge(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"name: x\n\x00\x00")
    huge = tmp_path / "h.yaml"
    huge.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    for path, fragment in ((binary, "binary file"), (tmp_path / "missing.yaml", "not found"),
                           (tmp_path, "is a directory"), (huge, "larger than the limit")):
        with pytest.raises(ValidationError) as info:
            load_yaml(path)
        assert fragment in str(info.value), path


def test_display_name_is_used_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load_yaml(path, display_name="shown/name.yaml")
    assert info.value.diagnostics[0].file == "shown/name.yaml"


def test_yaml_1_1_booleans_stay_text_as_in_yaml_1_2() -> None:
    document = parse("a: yes\nb: off\nc: true\nd: False\non: 1\n")
    assert document.data == {"a": "yes", "b": "off", "c": True, "d": False, "on": 1}


def test_a_host_named_like_a_yaml_1_1_boolean_is_a_name() -> None:
    from testbed.model.load_topology import topology_from_document

    document = parse("name: t\nsegments: {lan: {cidr: 10.0.0.0/24}}\n"
                     "hosts:\n  no: {segment: lan}\n  on: {segment: lan, trusts: [no]}\n"
                     "  x: {segment: lan, patched: yes}\n")
    topology = topology_from_document(document)
    assert topology.hosts["on"].trusts == ("no",)
    assert topology.hosts["x"].patched is True

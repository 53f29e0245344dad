"""The Bucket's etag index: Flux's revision, the keys it keeps and refuses, the limits."""

from __future__ import annotations

import hashlib

import pytest

from source_controller.git.ignore import IgnoreRulesRefused
from source_controller.objectstore.errors import BucketOperationFailed
from source_controller.objectstore.index import Limits, Listed, build_index, digest, ignore_filter, key_problem

LIMITS = Limits(max_objects=100, max_total_size=1000, max_object_size=100)
NO_RULES = ignore_filter(None, None)


def test_digest_is_fluxs_sorted_key_etag_lines() -> None:
    # Flux's Digester test: {"foo": "bar", "bar": "baz"} is written "bar baz\nfoo bar\n".
    expected = hashlib.sha256(b"bar baz\nfoo bar\n").hexdigest()
    assert digest({"foo": "bar", "bar": "baz"}) == f"sha256:{expected}"


def test_empty_bucket_revision_is_the_empty_digest() -> None:
    # The revision Flux's docs show for an empty bucket.
    assert digest({}) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_keys_sort_by_bytes_as_go_does() -> None:
    # "Z" (0x5a) < "a" (0x61) < "é" (0xc3 0xa9 in UTF-8): byte order, not locale order.
    index = {"é": "1", "a": "2", "Z": "3"}
    assert digest(index) == "sha256:" + hashlib.sha256("Z 3\na 2\né 1\n".encode()).hexdigest()


def test_directory_markers_and_the_root_sourceignore_are_not_indexed() -> None:
    listing = [Listed("dir/", "d", 0), Listed(".sourceignore", "s", 10), Listed("dir/a.yaml", "e1", 5)]
    index = build_index("b", listing, NO_RULES, LIMITS)
    assert index.etags == {"dir/a.yaml": "e1"}
    assert index.revision == digest({"dir/a.yaml": "e1"})


def test_ignore_rules_sourceignore_then_spec() -> None:
    keep = ignore_filter("*.md\n", "!README.md\n/private/\n")
    listing = [
        Listed("README.md", "1", 1),
        Listed("docs/x.md", "2", 1),
        Listed("private/key.yaml", "3", 1),
        Listed("app/deploy.yaml", "4", 1),
    ]
    assert set(build_index("b", listing, keep, LIMITS).etags) == {"README.md", "app/deploy.yaml"}


def test_no_default_exclusions_for_buckets() -> None:
    # Flux's bucket matcher has only the .sourceignore and spec rules: .git and images are objects like others.
    listing = [Listed(".git/config", "1", 1), Listed("logo.png", "2", 1)]
    assert set(build_index("b", listing, NO_RULES, LIMITS).etags) == {".git/config", "logo.png"}


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("../escape.yaml", "escapes the artifact root"),
        ("a/../../b", "escapes the artifact root"),
        ("/etc/passwd", "absolute path"),
        ("a//b", "empty or '.' path segment"),
        ("./a", "empty or '.' path segment"),
        ("a\\b", "backslash"),
        ("x" * 300, "longer than 255 bytes"),
    ],
)
def test_keys_that_are_not_paths_inside_the_root_are_refused_by_name(key: str, why: str) -> None:
    problem = key_problem(key)
    assert problem is not None
    assert why in problem
    with pytest.raises(BucketOperationFailed) as e:
        build_index("tenant", [Listed("ok.yaml", "1", 1), Listed(key, "2", 1)], NO_RULES, LIMITS)
    assert f"object key '{key}' in bucket 'tenant'" in str(e.value)
    assert e.value.reason == "BucketOperationFailed"


def test_a_refused_key_can_be_ignored_first() -> None:
    keep = ignore_filter(None, "/escape/\n")
    index = build_index("b", [Listed("escape/../../x", "1", 1), Listed("ok", "2", 1)], keep, LIMITS)
    assert index.etags == {"ok": "2"}


def test_key_that_is_also_a_directory_is_refused() -> None:
    with pytest.raises(BucketOperationFailed, match="object key 'a' in bucket 'b' is also the directory of 'a/b'"):
        build_index("b", [Listed("a", "1", 1), Listed("a/b", "2", 1)], NO_RULES, LIMITS)


def test_object_larger_than_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(
        BucketOperationFailed, match=r"object 'big\.bin' in bucket 'b' is 101 bytes.*max-bucket-object-size"
    ):
        build_index("b", [Listed("big.bin", "1", 101)], NO_RULES, LIMITS)


def test_ignored_large_object_is_not_refused() -> None:
    index = build_index("b", [Listed("big.bin", "1", 10**9)], ignore_filter(None, "*.bin"), LIMITS)
    assert len(index) == 0


def test_object_count_and_total_size_limits() -> None:
    many = [Listed(f"f{i}", "e", 1) for i in range(101)]
    with pytest.raises(BucketOperationFailed, match="more than 100 objects"):
        build_index("b", many, NO_RULES, LIMITS)
    heavy = [Listed(f"f{i}", "e", 100) for i in range(11)]
    with pytest.raises(BucketOperationFailed, match="exceed 1000 bytes"):
        build_index("b", heavy, NO_RULES, LIMITS)


def test_too_many_rules_are_refused() -> None:
    with pytest.raises(IgnoreRulesRefused, match="more than 1000"):
        ignore_filter("\n".join(f"a{i}" for i in range(600)), "\n".join(f"b{i}" for i in range(600)))

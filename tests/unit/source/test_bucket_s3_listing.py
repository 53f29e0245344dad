"""ListObjectsV2 pages read without botocore's parser: keys decoded as asked, etags as listed, paging, refusals."""

from __future__ import annotations

import pytest

from source_controller.objectstore.index import Listed
from source_controller.objectstore.s3_listing import MalformedListing, error_detail, parse_page

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def page(contents: str, *, truncated: bool = False, token: str | None = None, encoding: str = "url") -> bytes:
    extra = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    enc = f"<EncodingType>{encoding}</EncodingType>" if encoding else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult {NS}><Name>b</Name>{enc}'
        f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{contents}{extra}</ListBucketResult>"
    ).encode()


def obj(key: str, etag: str, size: int) -> str:
    return f"<Contents><Key>{key}</Key><ETag>{etag}</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"


def test_a_page_gives_its_objects_with_keys_decoded_and_etags_as_listed() -> None:
    body = page(obj("deploy/app.yaml", "&#34;9dd4&#34;", 12) + obj("a+b%2Fc%20d.yaml", "&quot;e1-2&quot;", 0))
    result = parse_page(body)
    assert result.objects == [Listed("deploy/app.yaml", '"9dd4"', 12), Listed("a b/c d.yaml", '"e1-2"', 0)]
    assert result.next_token is None


def test_keys_are_taken_as_written_when_the_server_did_not_encode_them() -> None:
    assert parse_page(page(obj("a+b.yaml", "x", 1), encoding="")).objects[0].key == "a+b.yaml"


def test_a_truncated_page_names_the_next_token() -> None:
    assert parse_page(page(obj("k", "e", 1), truncated=True, token="tok/1==")).next_token == "tok/1=="
    with pytest.raises(MalformedListing, match="without a NextContinuationToken"):
        parse_page(page(obj("k", "e", 1), truncated=True))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html><body>proxy login</body></html>", "'html' document"),
        (b"not xml at all", "not XML"),
        (page("<Contents><ETag>e</ETag></Contents>"), "without a Key"),
        (page(obj("k", "e", -1)), "Size that is not a number"),
    ],
)
def test_what_is_not_a_listing_is_refused(body: bytes, words: str) -> None:
    with pytest.raises(MalformedListing, match=words):
        parse_page(body)


def test_an_error_document_gives_code_and_message() -> None:
    body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>"
    assert error_detail(body) == "AccessDenied: Access Denied."
    assert error_detail(b"<html/>") is None
    assert error_detail(b"\x00garbage") is None

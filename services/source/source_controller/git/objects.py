"""Pure parsing of raw git commit and tag objects (``git cat-file``): people, message, signature."""

from __future__ import annotations

from dataclasses import dataclass

_SIG_HEADERS = ("gpgsig", "gpgsig-sha256")
_SIG_BEGIN = ("-----BEGIN PGP SIGNATURE-----", "-----BEGIN SSH SIGNATURE-----", "-----BEGIN SIGNED MESSAGE-----")


@dataclass(frozen=True)
class Signature:
    """Who and when: ``Name <email>`` and the raw ``<unix seconds> <tz>``."""

    name: str
    email: str
    when: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def parse_person(value: str) -> Signature:
    """Parse ``Name <email> 1700000000 +0100``."""
    name, _, rest = value.partition(" <")
    email, _, when = rest.partition("> ")
    return Signature(name.strip(), email.strip(), when.strip())


def _headers(raw: str) -> tuple[dict[str, str], str]:
    head, _, body = raw.partition("\n\n")
    headers: dict[str, str] = {}
    last = ""
    for line in head.split("\n"):
        if line.startswith(" ") and last:
            headers[last] += "\n" + line[1:]
        else:
            last, _, value = line.partition(" ")
            headers.setdefault(last, value)
    return headers, body


@dataclass(frozen=True)
class CommitObject:
    """The parts of a commit the controller reports or verifies."""

    tree: str
    author: Signature
    committer: Signature
    message: str
    signature: str | None


def parse_commit(raw: str) -> CommitObject:
    """Parse ``git cat-file commit`` output."""
    headers, message = _headers(raw)
    signature = next((headers[h] for h in _SIG_HEADERS if h in headers), None)
    return CommitObject(
        tree=headers.get("tree", ""),
        author=parse_person(headers.get("author", "")),
        committer=parse_person(headers.get("committer", "")),
        message=message,
        signature=signature,
    )


@dataclass(frozen=True)
class TagObject:
    """An annotated tag: its name, tagger, message and (inline) signature."""

    hash: str
    name: str
    target: str
    tagger: Signature | None
    message: str
    signature: str | None


def parse_tag(raw: str, hash: str) -> TagObject:
    """Parse ``git cat-file tag`` output; the signature sits at the end of the message."""
    headers, body = _headers(raw)
    signature: str | None = None
    starts = [body.find(marker) for marker in _SIG_BEGIN if marker in body]
    if starts:
        cut = min(starts)
        body, signature = body[:cut], body[cut:]
    tagger = parse_person(headers["tagger"]) if "tagger" in headers else None
    return TagObject(hash, headers.get("tag", ""), headers.get("object", ""), tagger, body, signature)


def short_message(message: str) -> str:
    """The first line of a message, cut to 50 characters as Flux shows it."""
    subject = message.split("\n", 1)[0]
    return subject if len(subject) <= 50 else subject[:50] + "..."

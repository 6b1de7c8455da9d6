"""Content flags for human review, never rejection (the Clean Room Agent's USB transfer design):
text that reads like instructions to an LLM, long base64 blobs and abnormal line lengths.

The repository is scanned as committed at HEAD (what the harness will check out), reading every
blob through one `git cat-file --batch` per chunk of content; binary blobs are skipped and blobs
over the size limit are flagged as not scanned. The manifest's free-text fields are scanned too.
"""

import bisect
import re
from collections import defaultdict
from collections.abc import Callable, Iterator

from engine.core.config import ValidationConfig
from engine.intake.checks.context import PackageContext
from engine.intake.checks.git import (
    TreeEntry,
    cat_objects,
    git_blocker,
    git_failure,
    head_commit,
    head_tree,
)
from engine.intake.manifest import MANIFEST_FILE
from engine.intake.validation_report import ContentFlag
from engine.isolation.gitsafe import GitError

LLM_INSTRUCTIONS = "llm-instructions"
BASE64 = "base64"
LONG_LINE = "long-line"
TOO_LARGE = "too-large"
NOT_SCANNED = "not-scanned"

MAX_FLAGS_PER_KIND = 10
CHUNK_BYTES = 64 * 1024 * 1024
EXCERPT_CHARS = 80
# Phrases that address an LLM, matched on lowercased text. Each comes with literal anchors, one
# of which every match contains: str.find locates the anchors at C speed and the pattern runs only
# in a window around each (one case-insensitive alternation over a whole repo ran at 2 MB/s).
INSTRUCTION_RULES = (
    (
        ("ignore",),
        r"\bignore\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier|preceding)"
        r"\s+(?:instructions|prompts?|messages|rules|directions)",
    ),
    (
        ("disregard",),
        r"\bdisregard\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier)",
    ),
    (
        ("forget",),
        r"\bforget\s+(?:all\s+|everything\s+)?(?:your|the|previous)\s+(?:previous\s+)?instructions",
    ),
    (("you",), r"\byou\s+are\s+(?:now\s+)?an?\s+(?:ai|llm|assistant|language\s+model|chatbot)\b"),
    (("language",), r"\bas\s+an\s+ai\s+language\s+model\b"),
    (("prompt",), r"\bsystem\s+prompt\b"),
    (
        ("note", "message", "instruction"),
        r"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
        r"(?:ai|llms?|assistants?|(?:ai\s+|coding\s+)?agents?|language\s+models?)\b",
    ),
    (
        ("dear", "hey", "attention"),
        r"\b(?:dear|hey|attention)\s*,?\s+(?:the\s+)?(?:ai|llm|assistant|agent|language\s+model)\b",
    ),
    (("agent", "assistant"), r"\b(?:ai|llm|coding)\s+(?:agent|assistant)s?\s*[:,]"),
    (
        ("<|im_", "sys>>", "system>"),
        r"<\|im_(?:start|end)\|>|<</?sys>>|</?system>",
    ),
)
ANCHOR_WINDOW = 200
INSTRUCTION_MATCHERS = [(anchors, re.compile(pattern)) for anchors, pattern in INSTRUCTION_RULES]
# A base64 run may wrap over lines of 64 characters or more (PEM and MIME wrap at 64 and 76);
# the lookbehind starts a match only where a run starts, which keeps the scan linear.
BASE64_RUN = r"(?<![A-Za-z0-9+/])(?:[A-Za-z0-9+/]{%d,}={0,2}(?:\r?\n)?)+"
WRAP_WIDTH = 64


def scan_content(ctx: PackageContext) -> list[ContentFlag]:
    return [*_manifest_flags(ctx), *_repo_flags(ctx)]


def _manifest_flags(ctx: PackageContext) -> Iterator[ContentFlag]:
    manifest = ctx.manifest
    if manifest is None:
        return
    fields = [
        ("description", manifest.description),
        ("source_url", manifest.source_url),
        ("created_by", manifest.created_by),
        ("license", manifest.license),
        ("domain", manifest.domain),
        *((f"commits[{i}].subject", c.subject) for i, c in enumerate(manifest.commits)),
    ]
    for field, text in fields:
        for kind, _, detail in _text_hits(text, ctx.config):
            yield ContentFlag(kind=kind, path=MANIFEST_FILE, line=1, detail=f"{field}: {detail}")


def _repo_flags(ctx: PackageContext) -> Iterator[ContentFlag]:
    if blocker := git_blocker(ctx):
        yield _not_scanned(blocker.detail)
        return
    try:
        if head_commit(ctx) is None:
            yield _not_scanned("HEAD does not resolve to a commit")
            return
        entries = head_tree(ctx)
        limit = ctx.config.content_max_file_bytes
        by_blob: dict[str, list[TreeEntry]] = defaultdict(list)
        for entry in entries:
            if entry.kind != "blob" or entry.mode.startswith("120"):
                continue
            if entry.size is not None and entry.size > limit:
                detail = f"{entry.size} bytes is over the scan limit of {limit}; not scanned"
                yield ContentFlag(kind=TOO_LARGE, path=entry.shown, line=1, detail=detail)
            else:
                by_blob[entry.sha].append(entry)
        for chunk in _chunks(by_blob):
            for sha, found in cat_objects(ctx, chunk).items():
                yield from _blob_flags(ctx.config, found, by_blob[sha])
    except GitError as exc:
        yield _not_scanned(git_failure(ctx, exc))


def _blob_flags(
    config: ValidationConfig, found: tuple[str, bytes] | None, entries: list[TreeEntry]
) -> Iterator[ContentFlag]:
    if found is None:
        yield _not_scanned(f"blob of {entries[0].shown} is missing")
        return
    data = found[1]
    if b"\0" in data:
        return
    hits = _text_hits(data.decode("utf-8", "replace"), config)
    for entry in entries:
        for kind, line, detail in hits:
            yield ContentFlag(kind=kind, path=entry.shown, line=line, detail=detail)


def _text_hits(text: str, config: ValidationConfig) -> list[tuple[str, int, str]]:
    """(kind, 1-based line, detail) for each thing in `text` a human should look at."""
    line_of = _line_finder(text)
    hits = [
        (
            LLM_INSTRUCTIONS,
            line_of(start),
            f"reads like instructions to an LLM: {_excerpt(text, start, end)}",
        )
        for start, end in _instruction_spans(text)
    ]
    least = config.content_base64_min_length
    for match in re.finditer(BASE64_RUN % min(WRAP_WIDTH, least), text):
        size = len(match.group()) - match.group().count("\n") - match.group().count("\r")
        if size >= least:
            head = match.group()[:32]
            detail = f"base64-like run of {size} characters: {head}…"
            hits.append((BASE64, line_of(match.start()), detail))
    limit = config.content_max_line_length
    lines = text.split("\n")
    if max(map(len, lines)) > limit:
        hits += [
            (LONG_LINE, n, f"line of {len(line)} characters (limit {limit}): {_clean(line[:40])}…")
            for n, line in enumerate(lines, start=1)
            if len(line) > limit
        ]
    return _capped(hits)


def _capped(hits: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """One hit per kind and line, at most MAX_FLAGS_PER_KIND of a kind; the last one kept says
    how many were left out."""
    by_kind: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    seen = set()
    for hit in hits:
        if hit[:2] not in seen:
            seen.add(hit[:2])
            by_kind[hit[0]].append(hit)
    kept = []
    for group in by_kind.values():
        kept += group[:MAX_FLAGS_PER_KIND]
        if len(group) > MAX_FLAGS_PER_KIND:
            kind, line, detail = kept.pop()
            more = len(group) - MAX_FLAGS_PER_KIND
            kept.append((kind, line, f"{detail} (and {more} more like this here)"))
    return kept


def _chunks(by_blob: dict[str, list[TreeEntry]]) -> Iterator[list[str]]:
    """Blob ids in groups of at most CHUNK_BYTES of content, so memory stays bounded."""
    chunk: list[str] = []
    size = 0
    for sha, entries in by_blob.items():
        blob_size = entries[0].size or 0
        if chunk and size + blob_size > CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(sha)
        size += blob_size
    if chunk:
        yield chunk


def _line_finder(text: str) -> Callable[[int], int]:
    """The 1-based line of an offset in `text`; the newline index is built on first use."""
    newlines: list[int] = []

    def line_of(offset: int) -> int:
        if not newlines:
            newlines.extend(m.start() for m in re.finditer("\n", text))
            newlines.append(len(text))  # an end mark, so the index is never empty once built
        return bisect.bisect_left(newlines, offset) + 1

    return line_of


def _instruction_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each phrase addressing an LLM, in order."""
    lowered = text.replace("\u0130", "i").lower()  # the one character whose lowercase is longer
    spans: dict[int, int] = {}
    for anchors, pattern in INSTRUCTION_MATCHERS:
        for anchor in anchors:
            at = lowered.find(anchor)
            while at != -1:
                window = (max(0, at - ANCHOR_WINDOW), at + len(anchor) + ANCHOR_WINDOW)
                for match in pattern.finditer(lowered, *window):
                    spans.setdefault(match.start(), match.end())
                at = lowered.find(anchor, at + len(anchor))
    return sorted(spans.items())


def _excerpt(text: str, start: int, end: int) -> str:
    """The phrase at text[start:end] with some context, on one line."""
    first = max(text.rfind("\n", 0, start) + 1, start - 30)
    last = text.find("\n", end)
    last = min(len(text) if last == -1 else last, end + 30)
    return _clean(text[first:last].strip())[:EXCERPT_CHARS]


def _clean(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _not_scanned(reason: str) -> ContentFlag:
    return ContentFlag(kind=NOT_SCANNED, path="repo", line=1, detail=f"not scanned: {reason}")

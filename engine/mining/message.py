"""Commit messages as task text: the cleaner, and the rule a message must pass to be a task.

The cleaner follows CommitChronicle's published filter: trailers, issue references, URLs, e-mails
and commit hashes carry no task information, so they are removed from the text the agent sees.
GitHub's squash-merge body is noise too: the `* subject` paragraphs of the squashed commits (two or
more, or any before a `---------` separator line) and the separator are dropped, leaving the pull
request's title and any prose written above the list. The harness prompts and every derived
training example take their task text from `clean_task_text` alone; cleaning twice changes nothing.
The quality rule follows CommitPackFT's: a verb first, enough words, not generic. The verb may be
imperative ("Add"), past or third person ("Added", "Fixes": many projects write that way), negated
("Don't cache", "Do not copy", "Never raise") or after an adverb ("Only drop None", "Correctly
unpickle"); merge, release and version-bump subjects are noise whatever their verb.
"""

import re

TRAILER_LINE = re.compile(
    r"^\s*(?:[A-Za-z][\w-]*-by|Co-authored-by|Change-Id|Cc|Bug|Issue|Fixes|Closes|Resolves"
    r"|Refs?|See-also|Related-to|Part-of|Backport-of|PR-URL|Reviewed-on|Link)\s*:.*$",
    re.IGNORECASE | re.MULTILINE,
)
CHERRY_PICK_LINE = re.compile(r"^\s*\(cherry picked from commit [0-9a-f]+\)\s*$", re.MULTILINE)
URL = re.compile(r"<?\b(?:https?://|www\.)\S+>?", re.IGNORECASE)
EMAIL = re.compile(r"<?\b[\w.+-]+@(?!\d+x\.)[\w-]+(?:\.[\w-]+)+\b>?")
"""An e-mail address; not an image's scale suffix (`icon@2x.png`)."""
REDACTED_EMAIL = "<redacted e-mail>"
ISSUE_REF = r"(?:[\w.-]+/[\w.-]+)?(?:#|\bGH-)\d+\b"
ISSUE_REF_LINE = re.compile(
    rf"^\s*(?:(?:fix(?:es|ed)?|close[sd]?|resolve[sd]?|refs?|see|re)\b:?\s*)?"
    rf"{ISSUE_REF}(?:[\s,]+(?:and\s+)?{ISSUE_REF})*\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
INLINE_ISSUE_REF = re.compile(ISSUE_REF, re.IGNORECASE)
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
CONVENTIONAL_PREFIX = re.compile(r"^\s*(?:\[[^\]]*\]\s*|[A-Za-z]+(?:\([^)]*\))?!?:\s+)+")
EMPTY_BRACKETS = re.compile(r"\(\s*[,;]?\s*\)|\[\s*\]")
SPACE_BEFORE_PUNCTUATION = re.compile(r"[ \t]+([,.;:)])")
SPACES = re.compile(r"[ \t]{2,}")
BLANK_LINES = re.compile(r"\n{3,}")
SQUASH_SEPARATOR = re.compile(r"^-{3,}[ \t]*$")
SQUASH_BULLET = re.compile(r"^\* \S")

MERGE_SUBJECT = re.compile(r"\bmerge (?:branch|pull request|remote-tracking|tag)\b", re.I)
VERSION_ONLY = re.compile(r"^\s*v?\d+(?:\.\d+)+\S*\s*$", re.IGNORECASE)
HASH_ONLY = re.compile(r"^\s*[0-9a-f]{7,40}\s*$")
WORK_IN_PROGRESS = re.compile(r"\bwip\b", re.IGNORECASE)
WORD = re.compile(r"[\w'-]+")
MIN_WORDS = 3
MAX_SUBJECT_CHARS = 1000


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


IMPERATIVE_VERBS = _word_set(
    """
    accept account add adjust allow annotate apply avoid backport break build cache call cap
    catch change check clarify clean clear close collapse compare compute consolidate convert
    copy correct count cover create deduplicate defer define delay delegate delete deprecate
    derive describe detect disable disallow display document drop emit enable enforce ensure
    escape evaluate exclude expand explain expose extend extract factor fill filter fix flatten
    fold forbid force forward freeze generalise generalize generate guard handle hide honor
    honour ignore implement import improve include increase infer inherit initialise initialize
    inline insert install introduce invalidate isolate keep let limit link list load lock log
    look lower make map mark match mention merge migrate move narrow normalise normalize note
    omit open optimise optimize order override parse pass patch perform permit pin polish port
    prefer preserve prevent print produce propagate protect provide prune raise re-add re-enable
    read rebuild record reduce refactor reformat register reimplement reject relax reload remove
    rename render reorder reorganise reorganize repair rephrase replace report represent require
    reset resolve respect restore restrict restructure retain retry return reuse reword rework
    rewrite run save separate serialise serialize set share shorten show silence simplify skip
    sort speed split standardise standardize start stop store strip subclass support suppress
    swap switch teach test tidy tighten track treat trim turn tweak unify unpin update upgrade
    use validate verify warn wrap write
    activate assert assume be beef bring bundle complete conform cooperate cope cull decouple
    dedup dedupe demonstrate eliminate enhance fail finalise finalize finish flesh flip get give
    hyphenate invert loop measure parametrise parametrize pickle purge push quench query quote
    recurse rerun send speedup spell stress take tolerate tune work
    """
)
IRREGULAR_PAST = _word_set(
    """
    brought broke built caught chose cut drew forbade froze gave got hid kept led left let made
    put ran read reran rewrote sent set shown split stuck swapped took undid wrote
    """
)
NEGATIONS = (("don't",), ("dont",), ("do", "not"), ("never",), ("no", "longer"))
ADVERBS = _word_set("also always just now only")
"""Adverbs a verb may follow, besides any word ending in -ly ("Correctly unpickle")."""
VERB_PREFIXES = ("re-", "re", "un-", "un", "de-")
RELEASE_SUBJECT = re.compile(
    r"^(?:(?:bump|increment|prepare|release|tag|(?:officially )?start)\b.*"
    r"\b(?:version|release|cycle)\b|(?:bump|release|tag)\b.*\d+\.\d+)",
    re.IGNORECASE,
)
"""A release or version-bump subject ("Bump version to 2.0", "Prepare 23.1.0 release")."""
CODE_NAME = re.compile(r"`[^`]+`|\w+_\w*|\w+\.\w+|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*")
"""A name from code: in backticks, snake_case, dotted, camelCase or CamelCase."""
GENERIC_WORDS = _word_set(
    """
    wip misc update updates updated typo typos fix fixes fixed minor cleanup clean up tweak tweaks
    small stuff change changes things thing code docs doc readme formatting format style lint
    linting whitespace comment comments wording spelling grammar more some various several other
    test tests todo todos it this that a an the in of to and for on
    """
)


def clean_task_text(message: str) -> str:
    """`message` as task text: no trailers, issue refs, URLs, e-mails, hashes or type prefixes."""
    text = message.replace("\r\n", "\n").replace("\r", "\n")
    subject, _, body = text.partition("\n")
    text = CONVENTIONAL_PREFIX.sub("", subject) + "\n" + _without_squash_list(body)
    for pattern in (TRAILER_LINE, CHERRY_PICK_LINE, ISSUE_REF_LINE, URL, EMAIL):
        text = pattern.sub("", text)
    text = INLINE_ISSUE_REF.sub("", text)
    text = COMMIT_HASH.sub("", text)
    text = EMPTY_BRACKETS.sub("", text)
    text = SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = SPACES.sub(" ", text)
    lines = [line.strip().rstrip(",;:") for line in text.split("\n")]
    text = BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    return text[:1].upper() + text[1:]


def redact_emails(text: str) -> str:
    """`text` with every e-mail address replaced by a marker: repository files shown in a prompt
    (an author's address in `pyproject.toml`) must not carry personal data either."""
    return EMAIL.sub(REDACTED_EMAIL, text)


def _without_squash_list(body: str) -> str:
    """`body` without GitHub's squash-merge list: from the first `* ` paragraph to the
    `---------` separator (kept: what follows it, trailers the cleaner removes next), when there is
    a separator or at least two `* ` paragraphs; otherwise `body` unchanged."""
    lines = body.split("\n")
    separator = next(
        (
            n
            for n, line in enumerate(lines)
            if SQUASH_SEPARATOR.match(line) and (n == 0 or not lines[n - 1].strip())
        ),
        None,
    )
    end = len(lines) if separator is None else separator
    bullets = [
        n
        for n in range(end)
        if SQUASH_BULLET.match(lines[n]) and (n == 0 or not lines[n - 1].strip())
    ]
    if separator is None and len(bullets) < 2:
        return body
    start = bullets[0] if bullets else end
    rest = lines[end + 1 :] if separator is not None else []
    return "\n".join([*lines[:start], *rest])


def task_subject(message: str) -> str:
    """The cleaned subject line: the first line of the task text, which the manifest records.

    Cleaning works line by line, so this is the cleaned text's first line whenever anything of
    the subject is left (a commit whose subject is all references fails the quality rule).
    """
    return clean_task_text(message.partition("\n")[0])


def _verb_form(word: str) -> bool:
    """Whether `word` is a listed verb: imperative, third person (`adds`, `fixes`, `applies`),
    past (`added`, `wrapped`, `applied`, `made`), or imperative with a re-/un-/de- prefix."""
    if word in IMPERATIVE_VERBS or word in IRREGULAR_PAST:
        return True
    stems = {word[:-1], word[:-2], word[:-3] + "y"}
    if word.endswith("ed") and len(word) > 4 and word[-3] == word[-4]:
        stems.add(word[:-3])
    if word.endswith(("s", "ed")) and stems & IMPERATIVE_VERBS:
        return True
    return any(
        word.startswith(prefix) and word.removeprefix(prefix) in IMPERATIVE_VERBS
        for prefix in VERB_PREFIXES
    )


def _starts_with_verb(words: list[str]) -> bool:
    """Whether the words open with a verb, a negated verb or an adverb and a verb."""
    for negation in NEGATIONS:
        if tuple(words[: len(negation)]) == negation:
            return len(words) > len(negation)
    if (words[0] in ADVERBS or words[0].endswith("ly")) and len(words) > 1:
        return _verb_form(words[1])
    return _verb_form(words[0])


def message_problem(message: str) -> str | None:
    """Why `message` cannot serve as a task description, or None when it can."""
    subject = message.partition("\n")[0]
    if MERGE_SUBJECT.search(subject):
        return "merge message"
    if VERSION_ONLY.match(subject):
        return "version-only message"
    if HASH_ONLY.match(subject):
        return "hash-only message"
    if WORK_IN_PROGRESS.search(subject):
        return "work in progress"
    task = clean_task_text(subject)
    if not task:
        return "nothing left after removing trailers, references, e-mails and hashes"
    if len(task) > MAX_SUBJECT_CHARS:
        return f"subject longer than {MAX_SUBJECT_CHARS} characters"
    if RELEASE_SUBJECT.match(task):
        return f"release or version bump: {task!r}"
    words = [w.lower() for w in WORD.findall(task.replace("\u2019", "'"))]
    if len(words) < MIN_WORDS and not (len(words) == 2 and CODE_NAME.search(task)):
        return f"fewer than {MIN_WORDS} words: {task!r}"
    if not _starts_with_verb(words):
        return f"does not start with a verb: {task!r}"
    if all(w in GENERIC_WORDS for w in words):
        return f"generic message: {task!r}"
    return None

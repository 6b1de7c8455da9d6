"""What the commit filter keeps: date range, diff size bounds and where tests live."""

import re
from datetime import date
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_TEST_PATTERNS = (
    "tests/**",
    "test/**",
    "testing/**",
    "**/tests/**",
    "**/test/**",
    "**/test_*.py",
    "**/*_test.py",
    "**/conftest.py",
)


class FilterSettings(BaseModel):
    """Bounds of the commit filter (LoRA Training Strategy §6.2); dates are inclusive committer
    dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: date | None = None
    until: date | None = None
    min_files: int = Field(default=1, ge=1)
    max_files: int = Field(default=5, ge=1)
    max_lines: int = Field(default=200, ge=1, description="changed lines must stay below this")
    test_patterns: tuple[str, ...] = Field(default=DEFAULT_TEST_PATTERNS, min_length=1)

    @field_validator("test_patterns")
    @classmethod
    def _patterns_are_relative_globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern or pattern.startswith("/") or "\\" in pattern or ".." in pattern:
                raise ValueError(f"test pattern {pattern!r} must be a relative POSIX glob")
            if "[" in pattern or "]" in pattern:
                raise ValueError(f"test pattern {pattern!r}: only *, ? and ** are supported")
            if re.search(r"[^/]\*\*|\*\*[^/]", pattern):
                raise ValueError(f"test pattern {pattern!r}: ** must be a whole path component")
        return value

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> Self:
        if self.min_files > self.max_files:
            raise ValueError(f"min_files {self.min_files} is above max_files {self.max_files}")
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since {self.since} is after until {self.until}")
        return self

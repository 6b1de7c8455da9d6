"""Every hostile case, by name."""

from engine.demo.hostile import HostileCase, git_files, wheels

ALL_CASES: list[HostileCase] = [*git_files.CASES, *wheels.CASES]
BY_NAME: dict[str, HostileCase] = {case.name: case for case in ALL_CASES}

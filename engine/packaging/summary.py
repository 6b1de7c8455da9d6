"""What `cra package` tells the operator: where the package went, what is in it, and why.

The summary names every requirement with the files that declared it and every note on what was
left out; the report adds the commit filter's attrition table and the planning-type mix.
"""

from collections import Counter

from engine.mining.planning import class_lines
from engine.packaging.build import PackageResult


def folded_sources(sources: list[str]) -> str:
    """`sources` joined with "; ", each file's table written once with the routes that reach it
    (`… tests, also via tox.ini [testenv] dependency_groups`), in the order first seen."""
    routes: dict[str, list[str]] = {}
    for source in sources:
        base, via_marker, via = source.partition(" (via ")
        vias = routes.setdefault(base, [])
        vias.append(via.removesuffix(")") if via_marker else "")
    parts = []
    for base, vias in routes.items():
        indirect = [via for via in vias if via]
        if not indirect:
            parts.append(base)
        elif len(indirect) == len(vias):
            parts.append(f"{base} (via {', '.join(indirect)})")
        else:
            parts.append(f"{base}, also via {', '.join(indirect)}")
    return "; ".join(parts)


def summary_lines(result: PackageResult) -> list[str]:
    """Where the package went, its head, counts and license, each requirement with its sources,
    and the notes on what was left out."""
    m = result.manifest
    deps = result.dependencies
    lines = [
        f"packaged {m.name} at {result.path}",
        f"  head {m.head}: {len(m.commits)} of {result.mining.total} commits kept, "
        f"{len(m.wheels)} wheels for Python {m.python_version}",
        f"  license: {m.license} (from {result.license.source})",
    ]
    if result.window is not None:
        cut = sum(", before " in d.reason for d in result.mining.dropped.values())
        lines.append(f"  warning: {result.window.warning(cut)}")
    if result.exclude_newer is not None:
        lines.append(
            f"  wheels: none uploaded after {result.exclude_newer.isoformat()} "
            "(the newest packaged commit's date unless --exclude-newer)"
        )
    if m.install_repo:
        build = ", ".join(deps.build_requires) or "nothing"
        lines.append(f"  install_repo: true (build backend needs {build})")
        lines += [
            f"    older revisions' backend needs {', '.join(b.requires) or 'nothing'} ({b.source})"
            for b in result.builds[1:]
        ]
    else:
        lines.append("  install_repo: false")
    width = max(len(r.text) for r in deps.requirements)
    lines.append("  requirements:")
    lines += [f"    {r.text:<{width}}  {folded_sources(r.sources)}" for r in deps.requirements]
    if deps.notes:
        lines.append("  notes:")
        lines += [f"    {note}" for note in deps.notes]
    return lines


def planning_mix(result: PackageResult) -> dict[str, int]:
    """How many kept commits have each planning type, most common first."""
    return dict(Counter(c.planning_type for c in result.manifest.commits).most_common())


def report_lines(result: PackageResult) -> list[str]:
    """The attrition table, the planning-type mix, the style score and the plan artifacts."""
    m = result.manifest
    mix = ", ".join(f"{kind} {count}" for kind, count in planning_mix(result).items())
    lines = [
        "commit filter:",
        *(f"  {row}" for row in result.mining.attrition_table().splitlines()),
    ]
    lines.append(f"planning types: {mix}")
    lines += class_lines(m)
    if m.style is not None:
        lines.append(f"style score: {m.style.score:.1f} over {m.style.files} Python files")
    labels = Counter(a.label for a in m.plan_artifacts)
    shown = ", ".join(f"{label} {n}" for label, n in sorted(labels.items())) or "none"
    lines.append(f"plan artifacts: {shown}")
    return lines

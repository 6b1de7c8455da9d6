"""Working safely with hostile repositories: the sandbox and its cgroups, git run
without a repository's hooks or config, snapshots, and environments built offline with uv.
"""

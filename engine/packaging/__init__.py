"""Turn a git repository into a repo package on the connected side (`cra package`).

`head` reads files at HEAD through git, `deps` finds the install and test requirements the
repository declares, `license` names its license, `wheels` gathers the wheels for a target Python
and platform, `build` assembles repo/, packages/ and manifest.json in a staging folder, and
`summary` says what went in and why.
"""

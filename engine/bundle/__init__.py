"""`cra bundle`: what an air-gapped machine needs to install the console from nothing.

On the connected side, `source` builds the console's own wheel from its checkout, `wheelhouse`
downloads the wheels it needs with pip and locks them by hash with uv, offline (which proves the
wheelhouse complete), `lock` checks the lock against the files, `debs` makes a local apt
repository of the system tools, `scripts` writes the install scripts, `manifest` bundle.json and
SHA256SUMS, and `build` puts it all in a staging folder and renames it into place.
"""

"""The git hook scripts (POSIX sh) that ``branchmig install`` copies into a repository.

Installed as the package ``branchmig.hook_scripts`` (see ``[tool.setuptools]`` in
pyproject.toml); this file makes that a regular package, which editable installs need.
"""

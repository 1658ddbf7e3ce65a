"""The template (POSIX sh, ``hook-tmpl``) from which ``branchmig install`` writes each of its
git hooks into a repository.

Installed as the package ``branchmig.hook_scripts`` (see ``[tool.setuptools]`` in
pyproject.toml); this file makes that a regular package, which editable installs need.
"""

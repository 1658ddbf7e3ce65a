from branchmig.cli import entry_point

entry_point()

from branchmig.cli import main

main()

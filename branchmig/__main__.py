from branchmig.entry import main

main()

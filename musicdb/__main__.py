from musicdb.cli import main

main()

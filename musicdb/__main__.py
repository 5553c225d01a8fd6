from musicdb.cli import main

# Guarded: the analysis forkserver imports __main__ when musicdb runs as `python -m musicdb`.
if __name__ == "__main__":
    main()

from musicdb.cli import app

app(prog_name="musicdb")

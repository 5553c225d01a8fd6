"""Quality and speed of `musicdb evaluate --cv 5` on the study's tables, preset by preset.

    python benchmarks/evaluate.py [--model ensemble] [--cv 5] [--presets xmas,artists,...]

Imports tests/data's study55 and study247 tables into a temporary database each, runs every
preset through the real CLI with --json, and prints accuracy / macro-F1 (fold mean ± std) and
the wall time next to the study's published numbers (../shared/seed55.md and issue 7).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from musicdb.cli import app

REPO = Path(__file__).resolve().parent.parent
TABLES = {"study55": REPO / "tests/data/seed_features_5band.csv",
          "study247": REPO / "tests/data/seed_features_5and25band.csv.gz"}
PRESETS = ("xmas", "with-boc", "artists", "taylor-vs-avril", "classical-vs-taylor")
# The study: RF 1,000 trees, 90/10 split, 0.76 -> 0.78 after pruning; issue 7's goals (CV 5).
PUBLISHED = {("study55", "xmas"): "study RF 0.76 (0.78 pruned, 90/10); goal >= 0.78 / F1 >= 0.68",
             ("study247", "xmas"): "goal >= 0.81 / F1 >= 0.73",
             ("study55", "classical-vs-taylor"): "study: near perfect (60/40)",
             ("study55", "taylor-vs-avril"): "study: good, not perfect (60/40)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ensemble")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--sets", default="study55,study247")
    args = parser.parse_args()
    runner = CliRunner()
    print(f"{'set':9} {'preset':20} {'accuracy':>15} {'macro-F1':>15} {'kept':>7} {'s':>6}  "
          "published", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for set_name in args.sets.split(","):
            db = Path(tmp) / f"{set_name}.duckdb"
            runner.invoke(app, ["import", str(TABLES[set_name]), "--feature-set", set_name,
                                "--db", str(db)], catch_exceptions=False)
            for preset in args.presets.split(","):
                started = time.perf_counter()
                result = runner.invoke(app, ["evaluate", "--experiment", preset, "--cv",
                                             str(args.cv), "--model", args.model, "--json",
                                             "--db", str(db)], catch_exceptions=False)
                wall = time.perf_counter() - started
                r = json.loads(result.stdout)
                print(f"{set_name:9} {preset:20} {r['accuracy']:.3f} ± {r['accuracy_std']:.3f}"
                      f"   {r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} "
                      f"{len(r['kept_features']):>3}/{r['n_features']:<3} {wall:6.1f}  "
                      f"{PUBLISHED.get((set_name, preset), '')}", flush=True)


if __name__ == "__main__":
    main()

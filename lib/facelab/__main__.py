"""``python -m facelab``: run notebooks, fetch assets, write the results table, register the kernel.

    python -m facelab run 05 --profile smoke -p lam=4 -p data_root=/data/fer2013
    python -m facelab run all
    python -m facelab assets
    python -m facelab results
    python -m facelab kernel
    python -m facelab nbval-prepare runs/nbval
    python -m facelab export [--check]
    python -m facelab book
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from .config import ConfigError, PROFILE_CHOICES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="facelab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute a notebook (or 'all') with papermill")
    r.add_argument("notebook", help="number or name, e.g. 05 or 05_au_guided_fer, or 'all'")
    r.add_argument("--profile", default="auto", help=f"one of {', '.join(PROFILE_CHOICES)}")
    r.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a notebook parameter (repeatable); values parse as JSON when they can")
    r.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    r.add_argument("--fail-fast", action="store_true", help="with 'all': stop at the first failing notebook")
    sub.add_parser("assets", help="fetch every package-shipped asset into the cache")
    sub.add_parser("results", help="write figures/RESULTS.md from every metrics.json")
    sub.add_parser("list", help="list the notebooks")
    bk = sub.add_parser("book", help="the executed notebooks under runs/ as a static site in build/book/html")
    bk.add_argument("--profiles", default="paper,demo,smoke",
                    help="which runs a page shows, first found wins (default paper,demo,smoke; CI's: smoke)")
    nv = sub.add_parser("nbval-prepare", help="copies of the notebooks whose check cell expects all True")
    nv.add_argument("dest")
    ex = sub.add_parser("export", help="write the notebooks' 'export' cells to facelab.papers.<name>")
    ex.add_argument("--check", action="store_true", help="write nothing; exit 1 when a module is stale")
    k = sub.add_parser("kernel", help="register this environment as the Jupyter kernel 'facelab'")
    k.add_argument("--user", action="store_true", help="install into the user's kernels, not sys.prefix")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "run":
            from . import runner

            params = runner.parse_params(args.param)
            if args.notebook == "all":
                results = runner.run_all(args.profile, params, fail_fast=args.fail_fast)
                failed = [x.notebook for x in results if not x.ok]
                print(f"{len(results) - len(failed)}/{len(results)} notebooks ok" +
                      (f"; failed: {', '.join(failed)} (see runs/<notebook>/ for the error cell)" if failed else ""))
                return 1 if failed else 0
            res = runner.run(args.notebook, args.profile, params, kernel=args.kernel)
            runner.write_results_md()
            if not res.ok:
                print(f"{res.notebook} FAILED: {res.error}\n  executed copy with the error cell: {res.output}",
                      file=sys.stderr)
                return 1
            print(f"{res.notebook} ok in {res.wall_s:.0f} s ({res.profile}); executed copy: {res.output}")
            return 0
        if args.cmd == "assets":
            from . import assets

            out = assets.fetch_all()
            return 1 if any(v.startswith("ERROR") for v in out.values()) else 0
        if args.cmd == "results":
            from . import runner

            print(runner.write_results_md())
            return 0
        if args.cmd == "list":
            from . import runner

            print("\n".join(runner.list_notebooks()))
            return 0
        if args.cmd == "book":
            from . import book

            return book.main_build(profiles=tuple(x.strip() for x in args.profiles.split(",") if x.strip()))
        if args.cmd == "nbval-prepare":
            from pathlib import Path

            from . import runner

            for p in runner.prepare_nbval(Path(args.dest)):
                print(p)
            return 0
        if args.cmd == "export":
            from . import export

            status = export.export_all(check=args.check)
            for name, what in status.items():
                print(f"facelab.papers.{name}: {what}")
            bad = [n for n, w in status.items() if w in ("stale", "missing", "orphan")]
            if args.check and bad:
                print(f"out of date: {', '.join(bad)}; run `python -m facelab export`", file=sys.stderr)
                return 1
            return 0
        if args.cmd == "kernel":
            where = ["--user"] if args.user else ["--sys-prefix"]
            return subprocess.call([sys.executable, "-m", "ipykernel", "install", *where,
                                    "--name", "facelab", "--display-name", "Python (facelab)"])
    except ConfigError as e:
        print(f"facelab: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m workbench``: the headless tour, HTML exports, notebook runs and the docs site."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .execute import NOTEBOOKS_DIR, execute_all, notebook_paths
from .settings import settings
from .tour import HTML_DIR, export_html, run_tour

ALL = "[0-9][0-9]_*.ipynb"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tour = commands.add_parser("tour", help="run the tour's steps, then export the notebooks to HTML")
    tour.add_argument("--no-export", action="store_true", help="run the tour's steps only")
    export = commands.add_parser("export", help="only export the notebooks to HTML")
    execute = commands.add_parser("execute", help="run the notebooks, keep the executed copies (artifacts/executed/)")
    docs = commands.add_parser("docs", help="build the documentation site (artifacts/site/)")
    docs.add_argument("--fresh", action="store_true", help="run every notebook again instead of reusing runs")
    minutes = commands.add_parser("minutes", help="time the workshop's core path (runs it at full size)")
    minutes.add_argument("--fresh", action="store_true", help="run every notebook again instead of reusing runs")
    for sub in (tour, export, execute):
        sub.add_argument("--notebooks", default=ALL, help="glob of notebooks (default: all)")
        sub.add_argument("--full", action="store_true", help="full size instead of small mode")
    for sub in (tour, export):
        sub.add_argument("--out", type=Path, default=HTML_DIR, help=f"HTML folder (default: {HTML_DIR})")
    execute.add_argument("--fresh", action="store_true", help="run even when an earlier run can be reused")
    args = parser.parse_args(argv)

    if args.command == "docs":
        return _docs(fresh=args.fresh)
    if args.command == "minutes":
        return _minutes(fresh=args.fresh)
    if args.command == "tour":
        print(f"== the tour ({settings().describe()})")
        result = run_tour()
        print(f"   {result.events} events in {result.stream_id}")
        if args.no_export:
            return 0
    paths = notebook_paths(args.notebooks)
    if not paths:
        print(f"no notebooks match {args.notebooks!r} in {NOTEBOOKS_DIR}", file=sys.stderr)
        return 1
    mode = "full" if args.full else "small"
    if args.command == "execute":
        print(f"== running {len(paths)} notebooks ({mode} mode)")
        results = execute_all(paths, small=not args.full, reuse=not args.fresh)
        for failed in (r for r in results if not r.ok):
            print(f"\n{failed.notebook.name}:\n{failed.error}", file=sys.stderr)
        return 0 if all(r.ok for r in results) else 1
    print(f"== exporting {len(paths)} notebooks to HTML ({mode} mode)")
    written = export_html(paths, out_dir=args.out, small=not args.full)
    print("open in a browser:")
    for path in written:
        print(f"  {path.resolve().as_uri()}")
    return 0


def _docs(*, fresh: bool) -> int:
    from .site import build_site

    report = build_site(reuse=not fresh)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.problems:
        print(f"the site has {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{report.pages} pages: {(report.site / 'index.html').resolve().as_uri()}")
    return 0


def _minutes(*, fresh: bool) -> int:
    from .minutes import core_path_minutes
    from .site import chapters

    core = [c.path for c in chapters() if "core" in c.part.lower()]
    table = core_path_minutes(core, reuse=not fresh)
    print(table.to_string(index=False))
    print(f"core path: {table['minutes'].sum()} minutes")
    return 0

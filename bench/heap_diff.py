"""Where a process's memory grew: compares the heap snapshots a node wrote with
``[server] heap_profile_dir`` (:mod:`caducee.heap_profile`).

    python -m bench.heap_diff DIR [--top 25] [--frames 6] [--from 1]

For each process (pid) that wrote snapshots, compares snapshot ``--from`` (1 by default: the
first one after the process warmed up) with its last one and prints the allocation sites whose
traced size grew most, with their call stacks (code locations only). Prints figures; never
decides anything.
"""

from __future__ import annotations

import argparse
import re
import tracemalloc
from collections import defaultdict
from pathlib import Path

NAME = re.compile(r"heap-(\d+)-(\d+)\.tracemalloc$")


def snapshots(directory: Path) -> dict[int, list[Path]]:
    """Each pid's snapshot files, in the order written."""
    found: dict[int, list[tuple[int, Path]]] = defaultdict(list)
    for path in directory.iterdir():
        match = NAME.search(path.name)
        if match:
            found[int(match[1])].append((int(match[2]), path))
    return {pid: [p for _, p in sorted(paths)] for pid, paths in sorted(found.items())}


def _total(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


def report(paths: list[Path], *, first: int, top: int, frames: int) -> list[str]:
    """The growth between ``paths[first]`` and the last snapshot, as lines of text."""
    start = tracemalloc.Snapshot.load(str(paths[min(first, len(paths) - 1)]))
    end = tracemalloc.Snapshot.load(str(paths[-1]))
    lines = [
        f"traced {_total(start) / 1e6:.1f} MB → {_total(end) / 1e6:.1f} MB "
        f"({paths[min(first, len(paths) - 1)].name} → {paths[-1].name})"
    ]
    by_line = end.compare_to(start, "lineno")
    lines.append("  grew most, by line:")
    for stat in by_line[:top]:
        if stat.size_diff <= 0:
            break
        frame = stat.traceback[0]
        lines.append(
            f"    {stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+8d} blocks  "
            f"{frame.filename}:{frame.lineno}"
        )
    by_stack = end.compare_to(start, "traceback")
    lines.append("  grew most, by call stack:")
    for stat in by_stack[: max(5, top // 3)]:
        if stat.size_diff <= 0:
            break
        lines.append(f"    {stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+8d} blocks")
        for frame in list(stat.traceback)[:frames]:
            lines.append(f"        {frame.filename}:{frame.lineno}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=25, help="allocation sites shown")
    parser.add_argument("--frames", type=int, default=6, help="frames shown per call stack")
    parser.add_argument(
        "--from", dest="first", type=int, default=1, help="snapshot compared with the last"
    )
    args = parser.parse_args()
    found = snapshots(args.directory)
    if not found:
        raise SystemExit(f"no heap snapshot in {args.directory}")
    for pid, paths in found.items():
        print(f"pid {pid}: {len(paths)} snapshots")
        if len(paths) < 2:
            continue
        for line in report(paths, first=args.first, top=args.top, frames=args.frames):
            print(line)


if __name__ == "__main__":
    main()

"""Walk one `budgetlm pretrain` call and check that it goes through the rooms (the layers of
pyproject.toml's import-linter contract) in one direction: every call from one room into
another goes down a layer, except callbacks, which a lower room calls because a higher one
handed it a function (the loop's `after_step`, an extra evaluation, a continual run's init).

    python .ci/walk.py                          # pretrain --budget 5steps on the built-in data
    python .ci/walk.py --prepared DIR --model.size nano

Prints the rooms in the order the call first enters them, every room-to-room call edge with
its count and direction, and whether the orchestrating rooms (workflows, job; api.py only
re-exports the workflows' functions) are each entered exactly once (module import-time code
is excluded: every module is imported first).
A callback is told apart from a wrong-way call statically: the caller's module does not import
the callee's room (so the layers contract still holds). Exits 1 when a call goes up a layer
from a module that imports the room it calls.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATORS = ("budgetlm.workflows", "budgetlm.job")


def layers() -> list[list[str]]:
    """The layers of the import-linter layers contract, top first; each a list of rooms."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]


def room_of(module: str, rooms: set[str]) -> str | None:
    """The room (a layer's package or module) a budgetlm module belongs to."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        name = ".".join(parts[:depth])
        if name in rooms:
            return name
    return None


def main(argv: list[str]) -> int:
    order = layers()
    rank = {room: i for i, layer in enumerate(order) for room in layer}
    rooms = set(rank)
    edges: Counter[tuple[str, str, str, str]] = Counter()  # caller room, callee room, modules
    entered: list[str] = []

    def profile(frame, event, _arg):
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        if not callee.startswith("budgetlm"):
            return
        to = room_of(callee, rooms)
        if to is None:
            return
        if to not in entered:
            entered.append(to)
        caller = frame.f_back
        while caller is not None and not caller.f_globals.get("__name__", "").startswith(
            "budgetlm"
        ):
            caller = caller.f_back  # through torch, numpy, stdlib: the budgetlm frame above
        if caller is None:
            return
        source = caller.f_globals["__name__"]
        origin = room_of(source, rooms)
        if origin is not None and origin != to:
            edges[(origin, to, source, callee)] += 1

    import importlib
    import pkgutil

    import budgetlm
    from budgetlm.cli import main as cli_main

    for module in pkgutil.walk_packages(budgetlm.__path__, "budgetlm."):
        if not module.name.endswith("__main__"):
            with contextlib.suppress(ImportError):  # an optional extra not installed
                importlib.import_module(module.name)  # import-time code is not part of the walk

    with tempfile.TemporaryDirectory(prefix="budgetlm-walk-") as tmp:
        args = ["pretrain", "--budget", "5steps", "--out", str(Path(tmp) / "walk"), *argv]
        if not any(a.startswith("--model") for a in argv):
            args += ["--model", "nano"]
        threading.setprofile(profile)
        sys.setprofile(profile)
        try:
            code = cli_main(args)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
    if code != 0:
        print(f"the walked pretrain failed (exit {code})")
        return 1

    import grimp

    graph = grimp.build_graph("budgetlm")
    print("rooms in the order the call first enters them:")
    print("  " + " -> ".join(entered))
    by_rooms: Counter[tuple[str, str]] = Counter()
    wrong, callbacks = [], set()
    for (origin, to, source, callee), count in edges.items():
        by_rooms[(origin, to)] += count
        if rank[to] < rank[origin]:  # up a layer
            imported = graph.find_modules_directly_imported_by(source)
            if any(room_of(m, rooms) == to for m in imported):
                wrong.append((source, callee, count))
            else:
                callbacks.add((source, callee))
    print("room-to-room calls (count, direction):")
    for (origin, to), count in sorted(
        by_rooms.items(), key=lambda e: (rank[e[0][0]], rank[e[0][1]])
    ):
        if rank[to] > rank[origin]:
            direction = "down"
        elif rank[to] == rank[origin]:
            direction = "across (independent rooms of one layer)"
        else:
            direction = "up: a callback"
        print(f"  {origin:>20} -> {to:<20} {count:>9,}  {direction}")
    for source, callee in sorted(callbacks):
        print(f"  callback: {source} calls a function of {callee} it was handed")
    entries = Counter()
    for (origin, to), count in by_rooms.items():
        if rank[to] > rank[origin]:
            entries[to] += count
    # api.py re-exports the workflows' functions: a call through it enters workflows/ directly
    once = [r for r in ORCHESTRATORS if entries[r] == 1]
    print(f"entered exactly once from a room above: {', '.join(once) or 'none'}")
    for room in ORCHESTRATORS:
        if entries[room] != 1:
            print(f"note: {room} entered {entries[room]} times from above")
    same_layer = [(o, t) for (o, t) in by_rooms if rank[o] == rank[t]]
    for source, callee, count in wrong:
        print(f"WRONG WAY: {source} calls {callee} ({count}x) and imports its room")
    if same_layer:
        print(f"note: calls across one layer's independent rooms: {same_layer}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

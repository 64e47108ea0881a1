import json
import pathlib

import wmill


def main(inbox: str):
    cursor = wmill.get_state() or ""  # the name of the last order handed on, from earlier runs
    folder = pathlib.Path(inbox)
    names = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
    new = [name for name in names if name > cursor]
    if new:
        wmill.set_state(new[-1])
    return [{"name": name, **json.loads((folder / name).read_text())} for name in new]

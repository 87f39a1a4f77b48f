"""``python -m stagent_lab.service --home H``: the workspace service (what `Lab()` starts)."""

from __future__ import annotations

import argparse
import sys

from stagent_lab.service.server import serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stagent_lab.service")
    p.add_argument("--home", help="workspace folder (default: $STAGENT_HOME or the user data dir)")
    p.add_argument("--tcp", help="also listen on loopback TCP, e.g. 127.0.0.1:8777")
    p.add_argument("--idle-timeout", type=float, help="seconds to stay up with nothing to do")
    args = p.parse_args(argv)
    return serve(args.home, tcp=args.tcp, idle_timeout=args.idle_timeout)


if __name__ == "__main__":
    sys.exit(main())

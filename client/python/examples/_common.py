"""What the examples share: the broker address and the import path."""
import argparse
import os
import pathlib
import sys

# Run from a checkout without installing: the package is one folder up.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def arguments(description, count=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--server",
                        default=os.environ.get("TERN_SERVER", "127.0.0.1:7411"),
                        help="broker address (default: $TERN_SERVER, else "
                             "127.0.0.1:7411)")
    parser.add_argument("--count", type=int, default=count,
                        help="stop after this many messages (default: %s)"
                        % ("never" if count is None else count))
    return parser

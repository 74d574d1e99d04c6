"""Seeded mutation fuzzing of a Keras model's config through `keras_to_torch`.

    KERAS_BACKEND=torch .venv/bin/python scripts/fuzz_keras_config.py [N] [SEED] [MODEL.keras]

Each input is the `.keras` archive MODEL (default models/keras_mnist_cnn.keras) with its
`config.json` mutated: a value replaced by an extreme or wrongly typed one, a key deleted, a
layer duplicated or dropped, a class name swapped, or bytes of the JSON text flipped. Every
input must either import or fail with a `KerasImportError`; anything else (another exception,
a hang past TIMEOUT seconds) is a bug, printed with the input's index so that it can be
regenerated (`input(k)` depends only on SEED and k). The last line is a summary:
`tried=N imported=… rejected=… bugs=… hangs=…`; the exit status is 1 when there are bugs.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import sys
import tempfile
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))

from gradviz_import.keras_model import KerasImportError, keras_to_torch  # noqa: E402

TIMEOUT = 60
EXTREME = [0, -1, 1, 2**31, -(2**63), 1e308, float("nan"), "", "x", None, True, [], {}, [0, 0], [-1, 28]]
CLASS_NAMES = ["Conv2D", "Dense", "MaxPooling2D", "Flatten", "Dropout", "Lambda", "Reshape", "Unknown", "InputLayer"]


def paths(obj, prefix=()):
    """Every (path, value) in a JSON value, depth first."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def parent(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    return obj


def mutate_json(cfg: dict, rng: random.Random) -> dict:
    cfg = copy.deepcopy(cfg)
    for _ in range(rng.randint(1, 3)):
        all_paths = [p for p, _ in paths(cfg) if p]
        path = rng.choice(all_paths)
        holder, key = parent(cfg, path), path[-1]
        op = rng.randrange(6)
        if op == 0:
            holder[key] = rng.choice(EXTREME)
        elif op == 1 and isinstance(holder, dict):
            del holder[key]
        elif op == 2 and key == "class_name":
            holder[key] = rng.choice(CLASS_NAMES)
        elif op == 3 and isinstance(holder, list):
            holder.insert(key, copy.deepcopy(holder[key]))
        elif op == 4 and isinstance(holder, list) and len(holder) > 1:
            del holder[key]
        elif isinstance(holder[key], (int, float)) and not isinstance(holder[key], bool):
            holder[key] = holder[key] * rng.choice([-1, 0, 2, 1000, 10**9])
    return cfg


def mutate_text(text: bytes, rng: random.Random) -> bytes:
    b = bytearray(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256)
    return bytes(b)


def make_input(members: dict, k: int, seed: int) -> dict:
    """The archive members of input k: config.json mutated, the rest as they are."""
    rng = random.Random(seed * 1_000_003 + k)
    cfg = json.loads(members["config.json"])
    if rng.random() < 0.8:
        text = json.dumps(mutate_json(cfg, rng)).encode()
    else:
        text = mutate_text(members["config.json"], rng)
    out = dict(members)
    out["config.json"] = text
    return out


class Hang(Exception):
    pass


def on_alarm(signum, frame):
    raise Hang()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "models", "keras_mnist_cnn.keras")
    with zipfile.ZipFile(model) as z:
        members = {name: z.read(name) for name in z.namelist()}
    # The unmodified model first: it must import, and keras' own slow first import is not
    # counted against the time limit.
    keras_to_torch(model)
    signal.signal(signal.SIGALRM, on_alarm)
    counts = {"imported": 0, "rejected": 0, "bugs": 0, "hangs": 0}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.keras")
        for k in range(n):
            with zipfile.ZipFile(path, "w") as z:
                for name, data in make_input(members, k, seed).items():
                    z.writestr(name, data)
            signal.alarm(TIMEOUT)
            try:
                keras_to_torch(path)
                counts["imported"] += 1
            except KerasImportError:
                counts["rejected"] += 1
            except Hang:
                counts["hangs"] += 1
                print(f"input {k}: no answer within {TIMEOUT} s", flush=True)
            except Exception as e:  # anything but KerasImportError is a bug
                counts["bugs"] += 1
                print(f"input {k}: {type(e).__name__}: {str(e)[:300]}", flush=True)
            finally:
                signal.alarm(0)
    print(f"tried={n} " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    sys.exit(1 if counts["bugs"] or counts["hangs"] else 0)


if __name__ == "__main__":
    main()

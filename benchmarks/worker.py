"""One backend's share of the full suite, in a freshly patched process.

    python benchmarks/worker.py BACKEND PRESET SCENARIO[,SCENARIO...]

Started by benchmarks/run.py; reports progress and results on stdout in
greenpools.cli.bench's line protocol.
"""

# Nothing before the monkey patching (greenpools.startup imports nothing else).
import sys

from greenpools.startup import patch_first

if __name__ == "__main__":
    patch_first(sys.argv[1])

import suite

from greenpools.cli import bench


def main(argv: list[str]) -> int:
    backend, preset, scenarios = argv[0], argv[1], argv[2].split(",")
    if bench.running_backend() != backend:
        raise SystemExit(f"worker for {backend} runs on {bench.running_backend()}")
    settings = suite.PRESETS[preset]
    steps = bench.plan(backend, scenarios, settings, suite.CONTENDERS)
    result = bench.run_steps(backend, steps, settings, suite.CONTENDERS, suite.SCENARIOS,
                             bench.emit_line)
    bench.emit_line({"event": "result", "data": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

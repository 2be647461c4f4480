"""The mutation score per module from mutmut's results (mutants/**/*.py.meta), after `mutmut run`.

A mutant listed as equivalent in docs/mutation.md (its full name in backticks, e.g.
`lesions.staging.x_t_category__mutmut_18`) is left out of the denominator; every other survivor,
and every mutant no test reaches, counts against the score. Exit status 1 when a module is below
the target, so `make mutation` fails loudly.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

TARGET = 0.90
KILLED = {1, 3, 24, -24, 152, 255, 36, 37, -9, -11}  # test failure, pytest error, timeout, type check, crash
SURVIVED = {0}
NO_TESTS = {5, 33}
MUTANT_NAME = re.compile(r"`([a-z_.]+\.x[a-zA-Z0-9_ǁ]*__mutmut_\d+)`")


def equivalent_mutants(doc: Path) -> set[str]:
    return set(MUTANT_NAME.findall(doc.read_text(encoding="utf-8"))) if doc.exists() else set()


def module_results(mutants_dir: Path) -> dict[str, dict[str, int | None]]:
    results: dict[str, dict[str, int | None]] = {}
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        module = str(meta.relative_to(mutants_dir)).removesuffix(".meta")
        results[module] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    return results


def main(mutants_dir: Path = Path("mutants"), doc: Path = Path("docs/mutation.md")) -> int:
    equivalent = equivalent_mutants(doc)
    results = module_results(mutants_dir)
    if not results:
        print("no mutmut results under mutants/: run `mutmut run` first")
        return 1
    print(f"{'module':28} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} {'no test':>7} {'other':>5} "
          f"{'score':>7}")
    below = []
    totals: Counter = Counter()
    for module, codes in results.items():
        c: Counter = Counter()
        survivors = []
        for name, code in codes.items():
            if name in equivalent:
                c["equivalent"] += 1
            elif code in KILLED:
                c["killed"] += 1
            elif code in SURVIVED:
                c["survived"] += 1
                survivors.append(name)
            elif code in NO_TESTS:
                c["no tests"] += 1
                survivors.append(name)
            else:
                c["other"] += 1  # not checked / skipped / suspicious: counts against the score
                survivors.append(name)
        c["mutants"] = len(codes)
        totals.update(c)
        counted = c["mutants"] - c["equivalent"]
        score = c["killed"] / counted if counted else 1.0
        print(f"{module:28} {c['mutants']:7} {c['killed']:6} {c['equivalent']:5} {c['survived']:8} "
              f"{c['no tests']:7} {c['other']:5} {score:7.1%}")
        if score < TARGET:
            below.append(module)
        for name in survivors:
            print(f"    not killed: {name} (exit code {codes[name]})")
    counted = totals["mutants"] - totals["equivalent"]
    print(f"{'all':28} {totals['mutants']:7} {totals['killed']:6} {totals['equivalent']:5} {totals['survived']:8} "
          f"{totals['no tests']:7} {totals['other']:5} {totals['killed'] / counted if counted else 1.0:7.1%}")
    unknown = equivalent - {name for codes in results.values() for name in codes}
    for name in sorted(unknown):
        print(f"docs/mutation.md lists {name}, which this run did not generate (renumbered? check the list)")
    if below:
        print(f"below the {TARGET:.0%} target: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*(Path(a) for a in sys.argv[1:])))

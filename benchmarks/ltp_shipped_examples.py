"""Extract the example lists the authors' shipped programs end with (reference data for tests).

Each of the 14 programs in princeton-nlp/TransformerPrograms `programs/` ends with `examples`,
the first ten validation examples of the run that produced it. Our data generation must give
the same ten for some seed. Usage (a clone of their repository, read as text, never run):

    python benchmarks/ltp_shipped_examples.py PATH/TO/TransformerPrograms \
        > tests/rasp/learned/shipped_examples.json
"""

import ast
import json
import sys
from pathlib import Path


def shipped_examples(repo: Path) -> dict[str, list]:
    out = {}
    for path in sorted(repo.glob("programs/rasp*/*/*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "examples":
                out[str(path.relative_to(repo / "programs"))] = ast.literal_eval(node.value)
    return out


if __name__ == "__main__":
    json.dump(shipped_examples(Path(sys.argv[1])), sys.stdout, indent=None)
    print()

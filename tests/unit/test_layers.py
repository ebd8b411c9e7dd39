"""The package's import structure: no cycle, no import up a layer, and the architecture page's
picture drawn from the code as it is (tests/layers.py reads the imports)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import layers  # noqa: E402  (tests/layers.py: the same checks as a command anyone can run)

DOC = layers.ROOT / "docs" / "architecture.md"


def test_no_import_cycle_and_no_import_up_a_layer():
    assert layers.problems() == []


def test_every_module_is_under_450_lines():
    long = {name: n for name, path in layers.modules().items() if (n := len(path.read_text().splitlines())) > 450}
    assert long == {}


def test_the_architecture_pages_picture_is_drawn_from_the_current_imports():
    assert layers.mermaid() in DOC.read_text(), (
        "docs/architecture.md's layer picture is stale: paste the output of `python tests/layers.py --mermaid`")

"""The README's set-up commands are what CI runs: keep them from drifting apart."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    blocks, inside, current = [], False, []
    for line in text.splitlines():
        if line.startswith("```bash"):
            inside, current = True, []
        elif line.startswith("```") and inside:
            inside = False
            blocks.append("\n".join(current).strip())
        elif inside:
            current.append(line)
    return blocks


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_commands = [b for b in blocks if b.endswith("pytest")]
    assert len(test_commands) == 1, "the README must give exactly one test command"
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in ci_lines


def test_readme_demo_command_installs_assets_and_runs_demo():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    demo = [b for b in blocks if b.endswith("rlrec demo")]
    assert len(demo) == 1
    assert "requirements-assets.txt" in demo[0] and "torch==2.13.0" in demo[0]

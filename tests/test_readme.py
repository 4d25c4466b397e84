"""The README's first two commands are the set-up a new user runs: keep them true."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_readme_starts_with_the_main_job_and_the_tests():
    main_job, tests = _setup_commands()
    assert "python -m harness --dataset random-xs-20-euclidean" in main_job
    assert tests.endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command():
    _, tests = _setup_commands()
    assert tests in (ROOT / ".ci" / "run").read_text()

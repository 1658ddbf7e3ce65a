"""Shell completion of the real ``branchmig`` console script, as the README tells users
to set it up (click's ``_BRANCHMIG_COMPLETE``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from gitutil import BRANCHMIG, git_env


def completion(tmp_path: Path, mode: str, words: str = "", cword: int = 0) -> str:
    """What ``_BRANCHMIG_COMPLETE=MODE branchmig`` prints, run in an empty folder."""
    env = git_env()
    env.update({"_BRANCHMIG_COMPLETE": mode, "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    proc = subprocess.run(
        [BRANCHMIG], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


@pytest.mark.parametrize(
    ("shell", "registers"),
    [
        ("bash", "complete -o nosort -F _branchmig_completion branchmig"),
        ("zsh", "#compdef branchmig"),
        ("fish", "complete --no-files --command branchmig"),
    ],
)
def test_each_shell_gets_a_completion_script(tmp_path: Path, shell: str, registers: str) -> None:
    script = completion(tmp_path, f"{shell}_source")
    assert registers in script
    assert f"_BRANCHMIG_COMPLETE={shell}_complete" in script


def test_commands_and_subcommands_are_offered(tmp_path: Path) -> None:
    assert completion(tmp_path, "bash_complete", "branchmig sn", 1).split() == ["plain,snapshot"]
    assert completion(tmp_path, "bash_complete", "branchmig snapshot r", 2).split() == [
        "plain,restore"
    ]
    options = completion(tmp_path, "bash_complete", "branchmig switch --re", 2).split()
    assert options == ["plain,--rehearse"]


def test_bash_completes_through_the_sourced_script(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on this machine")
    env = git_env()
    env["PATH"] = f"{Path(BRANCHMIG).parent}:{env.get('PATH', '')}"
    session = (
        "source <(_BRANCHMIG_COMPLETE=bash_source branchmig)\n"
        "COMP_WORDS=(branchmig sn); COMP_CWORD=1\n"
        "_branchmig_completion branchmig sn branchmig\n"
        'echo "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", session],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["snapshot"]

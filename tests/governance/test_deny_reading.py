"""Deny rules see through program paths, wrappers and git's global options (issue 12), and read
any line in time linear in its length (issue 17: a 400 KB command used to block the engine for
~28 s). No test here measures time: the linear bound is checked on the structure of the work.
"""

from __future__ import annotations

import pytest

from stagent_lab.governance import deny
from stagent_lab.governance.cascade import evaluate
from stagent_lab.governance.deny import MARK, SEG, deny_subject
from stagent_lab.governance.rules import rule_matches
from stagent_lab.governance.shell import MAX_COVERABLE_CHARS, MAX_COVERABLE_WORDS, deny_texts


def denied(rule: str, command: str) -> bool:
    return rule_matches(rule, "Bash", {"command": command}, mode="deny")


RM = "Bash(command:rm *)"
PUSH = "Bash(command:git push *)"


@pytest.mark.parametrize(
    "command",
    [
        "/bin/rm -rf build",
        "/usr/bin/env rm -rf build",
        "env -i /bin/rm x",
        "command rm x",
        "command -p /usr/bin/rm x",
        "sudo -u root /bin/rm -rf /",
        "\\rm x",
        "'r'm x",
        "$'rm' x",
        "$'\\x72m' x",
        "! rm x",
        "if rm x; then :; fi",
        "while rm x; do :; done",
        'echo "$(rm -rf /)"',
        'echo "`rm -rf /`"',
        "find . -exec /bin/rm {} ;",
        "bash -c '/bin/rm x'",
        "sh -c \"eval 'rm x'\"",
        "nice -n 5 ionice -c3 rm x",
        "git status && /usr/bin/rm -r .",
    ],
)
def test_rm_deny_sees_through(command: str) -> None:
    assert denied(RM, command), deny_texts(command)


@pytest.mark.parametrize(
    "command",
    [
        "git -C . push",
        "git -C /elsewhere push origin main",
        "git --no-pager push",
        "git -c x=y push",
        "git -c core.sshCommand=ssh push --force",
        "git --git-dir=.git --work-tree=. push",
        "git -P --literal-pathspecs push",
        "/usr/bin/git push",
        "sudo git -C repo push",
        "git push",
    ],
)
def test_git_deny_reads_past_global_options(command: str) -> None:
    assert denied(PUSH, command), deny_texts(command)


def test_deny_still_does_not_fire_on_mentions() -> None:
    for command in ("git commit -m rm", "echo rm", "git log --grep=push", "ls rm"):
        assert not denied(RM, command)
    assert not denied(PUSH, "git log push")
    assert not denied(PUSH, "echo git push")


def test_deny_star_crosses_line_breaks_inside_words() -> None:
    # The deny side reads broadly: a newline inside a quoted argument does not hide a match.
    assert denied("Bash(command:git commit *)", "git commit -m 'a\nb'")
    assert not rule_matches(
        "Bash(command:git commit *)", "Bash", {"command": "git commit -m 'a\nb'"}
    )


def test_deny_globs_with_middle_and_suffix_pieces() -> None:
    rule = "Bash(command:terraform apply *-auto-approve*)"
    assert denied(rule, "terraform apply -var x=1 -auto-approve")
    assert denied(rule, "sudo terraform apply -auto-approve=true")
    assert not denied(rule, "terraform plan -auto-approve")
    assert denied("Bash(command:* --force)", "sudo git push --force")
    assert not denied("Bash(command:* --force)", "git push --force-with-lease")
    assert denied("Bash(command:reboot)", "ls; /sbin/reboot")
    assert not denied("Bash(command:reboot)", "reboot now")


def test_deny_texts_lists_what_deny_rules_see() -> None:
    texts = deny_texts("sudo -u root /bin/rm x")
    assert "rm x" in texts and "/bin/rm x" in texts and "sudo -u root /bin/rm x" in texts
    assert "git push" in deny_texts("git -C . push")


# ---- linear time, checked structurally ---------------------------------------------------------


def test_subject_is_linear_in_the_line_even_after_a_wrapper() -> None:
    # "sudo x x x ... rm": every word after the wrapper may start the command that runs. The
    # old reading built one text per tail (quadratic); the subject marks the starts instead.
    for n in (10, 100, 1000):
        line = "sudo " + "x " * n + "rm -rf /"
        subject = deny_subject(line)
        assert len(subject.text) <= 2 * len(line) + 16
        assert subject.text.count(MARK) >= n  # every candidate start is there
        assert denied(RM, line)


def test_each_deny_rule_scans_a_line_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = deny.DenyGlob.search

    def counting(self, subject):  # type: ignore[no-untyped-def]
        calls.append(len(subject.text))
        return original(self, subject)

    monkeypatch.setattr(deny.DenyGlob, "search", counting)
    line = "sudo " + "x " * 3000 + "rm -rf /"
    decision = evaluate(
        profile_id="p",
        allowed_tools=None,
        auto_approve=(),
        auto_deny=("Bash(command:curl *)", "Bash(command:git push *)", RM),
        rules=[],
        tool="Bash",
        tool_input={"command": line},
    )
    assert decision is not None and decision.behavior == "deny"
    assert len(calls) <= 3  # at most one scan per deny rule, however many words


@pytest.mark.parametrize(
    "line",
    [
        "sudo " + "x " * 200_000 + "rm -rf /",
        "sudo " + "rm " * 133_000,
        "a;" * 200_000 + "rm -rf /",
        "echo '" + "y" * 400_000 + "'; rm x",
        "( " * 200_000 + "rm x",
        "timeout 5 " * 40_000 + "rm x",
    ],
    ids=["wrapped-words", "many-rm", "many-commands", "one-long-word", "groups", "wrappers"],
)
def test_a_400_kb_command_is_read_under_the_test_timeout(line: str) -> None:
    # The quadratic reading needed minutes for these; pytest-timeout stops a hang.
    assert len(line) >= 250_000
    assert denied(RM, line)
    assert not denied(PUSH, line)
    assert not rule_matches("Bash(command:*)", "Bash", {"command": line})


def test_lines_over_the_caps_are_never_allowed_and_read_coarsely() -> None:
    long_word = "echo " + "a" * (MAX_COVERABLE_CHARS + 1)
    many_words = "echo " + "a " * (MAX_COVERABLE_WORDS + 1)
    for line in (long_word, many_words):
        assert not rule_matches("Bash(command:echo *)", "Bash", {"command": line})
        assert rule_matches("Bash", "Bash", {"command": line})  # the bare tool is "anything"
    assert deny_subject(long_word).coarse
    # The coarse reading treats every word as a possible command start: it can only deny more.
    assert denied(RM, "echo " + "a " * 40_000 + "'r'm -rf /")
    assert denied(RM, "echo " + "a " * 40_000 + "; /bin/rm x")
    assert denied(PUSH, "echo " + "a " * 40_000 + "; git -C . --no-pager push")
    assert not denied(PUSH, "echo " + "a " * 40_000 + "; git log")


def test_nul_bytes_cannot_split_a_segment() -> None:
    subject = deny_subject("rm x\x00y")
    assert subject.text.count(SEG) == 2  # the start of the one segment, and the end

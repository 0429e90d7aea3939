"""The git layer: commits written with plumbing, compare-and-swap branch updates, imports."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest

from tests.sandbox import GitRepo, SandboxGitError
from tests.sandbox.gitrepo import ZERO_SHA, Identity, check_path

AUTHOR = Identity("carol", "1+carol@users.noreply.github.com", datetime(2024, 3, 1, tzinfo=UTC))


@pytest.fixture
def git(tmp_path):
    return GitRepo.init(tmp_path / "r.git", home=tmp_path / "home", default_branch="main")


def test_a_commit_writes_text_bytes_modes_renames_and_deletions(git):
    first = git.write_commit(
        parent=None,
        changes={
            "a.txt": "a\n",
            "bin/tool": "#!/bin/sh\n",
            "data.bin": b"\x00\xff",
            "docs/x.md": "x",
            "docs/y.md": "y",
        },
        message="First",
        author=AUTHOR,
        executable=["bin/tool"],
    )
    git.update_refs([("refs/heads/main", first, ZERO_SHA)])
    second = git.write_commit(
        parent=first,
        changes={"docs": None, 'with space "q".txt': "q"},
        renames={"a.txt": "moved/a.txt"},
        message="Second",
        author=AUTHOR,
    )
    assert git.read(second, "moved/a.txt") == b"a\n"
    assert git.read(first, "data.bin") == b"\x00\xff"
    assert git.entry(first, "bin/tool").mode == "100755"
    assert git.list_tree(second, "docs") is None
    changes = {(c.path, c.status, c.previous_path) for c in git.diff(first, second)}
    assert changes == {
        ("moved/a.txt", "renamed", "a.txt"),
        ("docs/x.md", "removed", None),
        ("docs/y.md", "removed", None),
        ('with space "q".txt', "added", None),
    }
    info = git.info(second)
    assert (info.message, info.parents, info.author_name) == ("Second", (first,), "carol")
    assert info.author_date == "2024-03-01T00:00:00+00:00"
    assert "refs/sandbox/staging" not in git.refs()


def test_deleting_or_renaming_what_is_not_there_is_an_error(git):
    first = git.write_commit(parent=None, changes={"a": "a"}, message="m", author=AUTHOR)
    with pytest.raises(SandboxGitError, match="nope"):
        git.write_commit(parent=first, changes={"nope": None}, message="m", author=AUTHOR)
    with pytest.raises(SandboxGitError, match="gone"):
        git.write_commit(
            parent=first, changes={}, renames={"gone": "b"}, message="m", author=AUTHOR
        )


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "a//b", ".git/config", "a\nb", "./a"])
def test_paths_git_would_refuse_or_misplace(path):
    with pytest.raises(ValueError):
        check_path(path)


def test_a_branch_update_is_a_compare_and_swap(git):
    first = git.write_commit(parent=None, changes={"a": "1"}, message="m", author=AUTHOR)
    git.update_refs([("refs/heads/main", first, ZERO_SHA)])
    second = git.write_commit(parent=first, changes={"a": "2"}, message="m", author=AUTHOR)
    with pytest.raises(SandboxGitError, match="push"):
        git.update_refs([("refs/heads/main", second, second)])  # main is not at `second`
    assert git.branch_sha("main") == first


async def test_a_push_landing_first_is_never_overwritten(github, repo, outside_git):
    """The sandbox commits against the branch as it is, after someone pushed to it."""
    clone = outside_git.home / "c"
    outside_git("clone", "-q", str(github.repo(repo).path), str(clone))
    (clone / "pushed.txt").write_text("p\n")
    outside_git("add", "pushed.txt", cwd=clone)
    outside_git("commit", "-qm", "pushed", cwd=clone)
    outside_git("push", "-q", "origin", "main", cwd=clone)
    sha = github.commit(repo, "main", {"mine.txt": "m\n"})
    assert github.git(repo).read(sha, "pushed.txt") == b"p\n"


def test_importing_a_checkout_takes_what_git_lists(github, tmp_path):
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("x = 1\n")
    (source / "notes.txt").write_text("untracked but not ignored\n")
    (source / "secret.log").write_text("ignored\n")
    (source / ".gitignore").write_text("*.log\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(source)], check=True, env=env)
    subprocess.run(["git", "add", "pkg", ".gitignore"], cwd=source, check=True, env=env)
    repo = github.create_repo("acme/copy", source=source, files={"extra.md": "e"})
    listed = {e.path for e in repo.git.list_tree("main", recursive=True) if e.kind == "blob"}
    assert listed == {".gitignore", "pkg/mod.py", "notes.txt", "extra.md"}


def test_importing_a_plain_folder_skips_caches_and_virtualenvs(github, tmp_path):
    source = tmp_path / "plain"
    for name in ("a.py", ".venv/lib.py", "pkg/__pycache__/a.pyc", "pkg/b.py"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    repo = github.create_repo("acme/plain", source=source)
    listed = {e.path for e in repo.git.list_tree("main", recursive=True) if e.kind == "blob"}
    assert listed == {"a.py", "pkg/b.py"}


def test_set_up_mistakes_are_clear_errors(github, repo):
    with pytest.raises(ValueError, match="already exists"):
        github.create_repo(repo)
    with pytest.raises(ValueError, match="owner/name"):
        github.create_repo("no-slash")
    with pytest.raises(ValueError, match="role"):
        github.create_repo("acme/other", collaborators={"x": "superuser"})
    with pytest.raises(ValueError, match="no branch or commit"):
        github.commit(repo, "topic", {"a": "a"}, base="missing")
    with pytest.raises(ValueError, match="no branch"):
        github.open_pull(repo, "missing")
    with pytest.raises(ValueError, match="not a commit"):
        github.force_push(repo, "main", "f" * 40)
    with pytest.raises(KeyError, match="create_repo"):
        github.commit("acme/unknown", "main", {"a": "a"})
    with pytest.raises(ValueError, match="merge method"):
        github.merge_pull(repo, 1, method="rebase")
    with pytest.raises(ValueError, match="default branch"):
        github.delete_branch(repo, "main")
    with pytest.raises(ValueError, match="team slug"):
        github.add_team("acme", "Core Team", [])
    with pytest.raises(ValueError, match="login"):
        github.add_user("-nope")

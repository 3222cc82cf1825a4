"""should_skip: when a re-run may leave KubeOne out."""

from kvinstall.kubeone.runner import KUBEONE_EXIT_CODES, describe_exit, should_skip


def test_should_skip() -> None:
    assert should_skip("sha256:a", None, True) == (
        False,
        "KubeOne has not run successfully for this cluster yet",
    )
    skip, why = should_skip("sha256:a", "sha256:b", True)
    assert not skip and "changed" in why
    skip, why = should_skip("sha256:a", "sha256:a", False)
    assert not skip and "Ready" in why
    skip, why = should_skip("sha256:a", "sha256:a", True)
    assert skip and "skipping KubeOne" in why


def test_exit_codes_named() -> None:
    assert set(range(10, 17)) <= set(KUBEONE_EXIT_CODES)
    assert describe_exit(13) == "SSH error"
    assert describe_exit(99) == "unexpected exit code"

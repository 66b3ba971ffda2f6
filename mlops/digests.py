"""Tamper evidence for registered models: each artifact's SHA-256, pinned in the version's tags.

Registration (`training.registration`) records the digest of every artifact a consumer
will trust (the ONNX file, the parity sample that vouches for it, the monitoring reference
sample) as tags of the registered version. The artifacts live in the artifact store, the
tags in the registry: someone who can overwrite a file in the store but cannot write the
registry (which needs MLflow's write credentials) is caught when the file is next used.
Consumers check a file before using it (`verify_file`) and refuse a mismatch with
`DigestMismatch`, which names the file, the version and both digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

ONNX_DIGEST_TAG: Final = "onnx_sha256"
PARITY_DIGEST_TAG: Final = "parity_sample_sha256"
REFERENCE_DIGEST_TAG: Final = "reference_sample_sha256"


class DigestMismatch(ValueError):
    """An artifact differs from the one registered, or carries no digest where one is required."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_file(
    path: Path,
    tags: Mapping[str, str],
    tag: str,
    *,
    model: str,
    require: bool,
) -> None:
    """Check `path` against the digest in `tags[tag]` (the registered version's tags).

    `model` names the version in the message (`churn v3`). A version without that tag
    (registered before digests were recorded, or by hand) passes unless `require`: off the
    `local` profile serving requires one. Raises `DigestMismatch`.
    """
    expected = tags.get(tag)
    if not expected:
        if require:
            raise DigestMismatch(
                f"{model}: {path.name} has no registered digest (tag {tag}); "
                "only versions registered with their digests are served off profile 'local'"
            )
        return
    actual = file_sha256(path)
    if actual != expected:
        raise DigestMismatch(
            f"{model}: {path.name} changed after registration "
            f"(sha256 {actual[:12]}..., registered {expected[:12]}...)"
        )

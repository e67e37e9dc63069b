"""Builders for hand-written components in the Greengrass Development Kit layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.hashing import sha256_b64_file


def write_component(
    build: Path,
    name: str,
    version: str,
    *,
    lifecycle: dict[str, Any],
    files: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    platform: dict[str, str] | None = None,
    dependencies: dict[str, Any] | None = None,
    corrupt: str | None = None,
) -> Path:
    """Write recipe + artifacts with real Base64 SHA-256 digests; `corrupt` names a file to
    alter after its digest was recorded."""
    art_dir = build / "artifacts" / name / version
    art_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for fname, content in (files or {}).items():
        p = art_dir / fname
        p.write_text(content)
        artifacts.append(
            {
                "URI": f"s3://BUCKET_NAME/{name}/{version}/{fname}",
                "Digest": sha256_b64_file(p),
                "Algorithm": "SHA-256",
                "Permission": {"Read": "OWNER", "Execute": "OWNER"},
            }
        )
        if corrupt == fname:
            p.write_text(content + "\n# tampered\n")
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentPublisher": "tests",
        "ComponentConfiguration": {"DefaultConfiguration": config or {}},
        "Manifests": [
            {
                "Platform": platform or {"os": "linux"},
                "Lifecycle": lifecycle,
                "Artifacts": artifacts,
            }
        ],
    }
    if dependencies:
        recipe["ComponentDependencies"] = dependencies
    (build / "recipes").mkdir(parents=True, exist_ok=True)
    path = build / "recipes" / f"{name}-{version}.json"
    path.write_text(json.dumps(recipe, indent=2))
    return path

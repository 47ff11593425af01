"""Keeps the Dockerfile and docker-compose.yml in step with the workspace
(no container runtime is needed): every binary crate is built and copied
into an image, every image target the compose file builds exists, and the
base images are pinned by digest."""
import pathlib
import re
import sys
import tomllib

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
dockerfile = (root / "Dockerfile").read_text()
problems = []

bins = []
for manifest in sorted(root.glob("crates/*/Cargo.toml")):
    bins += [b["name"] for b in tomllib.loads(manifest.read_text()).get("bin", [])]
targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M | re.I))
for name in bins:
    if f"target/release/{name} " not in dockerfile + " " and f"target/release/{name}\n" not in dockerfile:
        problems.append(f"binary {name} is not built into /out by the Dockerfile")
    if f"/out/{name} " not in dockerfile:
        problems.append(f"binary {name} is in no image (COPY --from=build /out/{name})")
for arg in re.findall(r"^ARG\s+\w+_IMAGE=(\S+)", dockerfile, re.M):
    if "@sha256:" not in arg:
        problems.append(f"base image {arg} is not pinned by digest")

compose = yaml.safe_load((root / "docker-compose.yml").read_text())
for name, service in compose["services"].items():
    target = (service.get("build") or {}).get("target")
    if service.get("build") and target not in targets:
        problems.append(f"compose service {name} builds target {target!r}, not in the Dockerfile")

if problems:
    sys.exit("images: " + "; ".join(problems))
print(f"images: {len(bins)} binaries in {len(targets)} Dockerfile targets, compose builds {sum(1 for s in compose['services'].values() if s.get('build'))}")

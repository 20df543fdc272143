"""Helpers of tests/harness/images/build-app-images.sh (and build-db-images.sh) for testing images without a cluster.

``configmaps OUTDIR``
    Reads ``helm template`` output on stdin and writes every ConfigMap key to OUTDIR/<name>/<key>, so the
    test runs the images on exactly the configuration the charts render.
``runc-config``
    Writes a runc ``config.json`` for one container of an emulated pod, starting from the one ``umoci
    unpack`` derived from the image: the chart's user, command, environment, read-only root filesystem,
    no capabilities, no new privileges, and bind mounts standing in for the pod's volumes (emptyDirs and
    ConfigMaps). The network namespace is the host's: the test rewrites every ``listen`` to 127.0.0.1, so
    nothing is reachable from outside the machine. build-db-images.sh adds ``--netns`` (a private network
    namespace instead), ``--rw-root`` (the operator's pods do not set readOnlyRootFilesystem: the rootfs is
    then a per-container overlay), ``--image-groups`` (the user's groups from the image's /etc/group, which
    containerd's CRI adds to the supplementary groups), ``--image-home`` (HOME from the image's /etc/passwd, as
    containerd sets it for an image without HOME) and ``--memory-limit`` (the pod's memory limit, which Spilo
    sizes shared_buffers from).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml


def extract_configmaps(manifest: str, outdir: Path) -> list[Path]:
    """Write each ConfigMap's data keys as files; return the files written."""
    written: list[Path] = []
    for doc in yaml.safe_load_all(manifest):
        if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
            continue
        name = str(doc["metadata"]["name"])
        for key, value in (doc.get("data") or {}).items():
            target = outdir / name / str(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(value), encoding="utf-8")
            written.append(target)
    return written


def loopback_listen(nginx_conf: str) -> str:
    """Bind every bare-port ``listen N;`` directive to 127.0.0.1 (a pod has its own network namespace)."""
    return re.sub(r"(?m)^(\s*listen\s+)(\d+)(\s*;)", r"\g<1>127.0.0.1:\g<2>\g<3>", nginx_conf)


def _mount(source: str, destination: str, *, readonly: bool) -> dict[str, Any]:
    options = ["rbind", "ro" if readonly else "rw", "nosuid", "nodev"]
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def runc_config(
    base: dict[str, Any],
    *,
    rootfs: str,
    args: list[str] | None,
    uid: int,
    gid: int,
    supplementary_gids: list[int],
    cwd: str | None,
    env: list[str],
    binds: list[tuple[str, str, bool]],
    hostname: str,
    netns: str | None = None,
    readonly_root: bool = True,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Return ``base`` adapted to one container of the emulated pod (Pod Security ``restricted``-like)."""
    config = json.loads(json.dumps(base))
    config["root"] = {"path": rootfs, "readonly": readonly_root}
    config["hostname"] = hostname
    process = config["process"]
    process["terminal"] = False
    if args:
        process["args"] = args
    if cwd:
        process["cwd"] = cwd
    process["user"] = {"uid": uid, "gid": gid, "additionalGids": supplementary_gids}
    # Later entries win, as with a container's env over the image's.
    merged: dict[str, str] = {}
    for item in [*process.get("env", []), *env]:
        key, _sep, value = item.partition("=")
        merged[key] = value
    process["env"] = [f"{k}={v}" for k, v in merged.items()]
    process["noNewPrivileges"] = True
    process["capabilities"] = {"bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []}
    linux = config.setdefault("linux", {})
    linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"]
    if netns:
        # Joins an existing namespace (the test's), like the containers of one pod join its pause container's.
        linux["namespaces"].append({"type": "network", "path": netns})
    if memory_limit:
        linux.setdefault("resources", {})["memory"] = {"limit": memory_limit}
    mounts = [m for m in config.get("mounts", []) if m.get("destination") not in {bind[1] for bind in binds}]
    mounts.extend(_mount(src, dst, readonly=ro) for src, dst, ro in binds)
    config["mounts"] = mounts
    return config


def image_home(rootfs: Path, uid: int) -> str:
    """The home directory of ``uid`` in the image's /etc/passwd, "/" without an entry: the HOME containerd gives a
    container whose image sets none (umoci's config.json says HOME=/root whatever the user)."""
    for line in (rootfs / "etc/passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) > 5 and fields[2] == str(uid):
            return fields[5] or "/"
    return "/"


def image_groups(rootfs: Path, uid: int) -> list[int]:
    """The groups that list the user of ``uid`` as a member in the image's /etc/group, as containerd's CRI adds
    them to a container's supplementary groups (Kubernetes' default supplementalGroupsPolicy Merge)."""
    names = [
        fields[0]
        for fields in (line.split(":") for line in (rootfs / "etc/passwd").read_text(encoding="utf-8").splitlines())
        if len(fields) > 2 and fields[2] == str(uid)
    ]
    if not names:
        return []
    gids: list[int] = []
    for line in (rootfs / "etc/group").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) == 4 and names[0] in fields[3].split(",") and int(fields[2]) not in gids:
            gids.append(int(fields[2]))
    return gids


def _parse_bind(spec: str) -> tuple[str, str, bool]:
    parts = spec.split(":")
    if len(parts) == 2:
        return parts[0], parts[1], False
    if len(parts) == 3 and parts[2] in {"ro", "rw"}:
        return parts[0], parts[1], parts[2] == "ro"
    raise argparse.ArgumentTypeError(f"--bind wants SRC:DST[:ro|rw], got {spec!r}")


def _parse_ids(spec: str) -> tuple[int, int]:
    uid, _sep, gid = spec.partition(":")
    return int(uid), int(gid or uid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    cm = sub.add_parser("configmaps", help="extract ConfigMap keys from helm template output on stdin")
    cm.add_argument("outdir", type=Path)
    cm.add_argument(
        "--loopback",
        action="append",
        default=[],
        metavar="NAME/KEY",
        help="rewrite bare `listen PORT;` lines of this file to 127.0.0.1:PORT (repeatable)",
    )

    rc = sub.add_parser("runc-config", help="write a runc config.json for one container")
    rc.add_argument("--base", type=Path, required=True, help="config.json from `umoci unpack`")
    rc.add_argument("--out", type=Path, required=True)
    rc.add_argument("--rootfs", required=True)
    rc.add_argument("--user", type=_parse_ids, required=True, metavar="UID:GID")
    rc.add_argument("--fs-group", type=int, action="append", default=[])
    rc.add_argument("--cwd")
    rc.add_argument("--args-json", help="the container's command as a JSON array (default: the image's)")
    rc.add_argument("--env", action="append", default=[], metavar="K=V")
    rc.add_argument("--env-dir", type=Path, help="a directory of files KEY holding values (a ConfigMap)")
    rc.add_argument("--bind", type=_parse_bind, action="append", default=[], metavar="SRC:DST[:ro]")
    rc.add_argument("--hostname", default="pod")
    rc.add_argument("--netns", help="join this network namespace (a path such as /var/run/netns/NAME)")
    rc.add_argument("--rw-root", action="store_true", help="writable root filesystem (readOnlyRootFilesystem false)")
    rc.add_argument("--image-groups", action="store_true", help="add the user's groups from the image's /etc/group")
    rc.add_argument("--memory-limit", type=int, metavar="BYTES", help="the container's memory limit")
    rc.add_argument("--image-home", action="store_true", help="HOME from the image's /etc/passwd for the user")

    ns = parser.parse_args(argv)
    if ns.command == "configmaps":
        written = extract_configmaps(sys.stdin.read(), ns.outdir)
        for rel in ns.loopback:
            path = ns.outdir / rel
            path.write_text(loopback_listen(path.read_text(encoding="utf-8")), encoding="utf-8")
        print("\n".join(str(p) for p in written))
        return 0

    env: list[str] = []
    if ns.image_home and (Path(ns.rootfs) / "etc/passwd").is_file():
        env.append(f"HOME={image_home(Path(ns.rootfs), ns.user[0])}")
    elif ns.image_home:
        env.append("HOME=/")
    if ns.env_dir:
        env.extend(f"{p.name}={p.read_text(encoding='utf-8')}" for p in sorted(ns.env_dir.iterdir()) if p.is_file())
    env.extend(ns.env)
    args = json.loads(ns.args_json) if ns.args_json else None
    uid, gid = ns.user
    groups = image_groups(Path(ns.rootfs), uid) if ns.image_groups else []
    config = runc_config(
        json.loads(ns.base.read_text(encoding="utf-8")),
        rootfs=ns.rootfs,
        args=args,
        uid=uid,
        gid=gid,
        supplementary_gids=[*groups, *(g for g in ns.fs_group if g not in groups)],
        cwd=ns.cwd,
        env=env,
        binds=ns.bind,
        hostname=ns.hostname,
        netns=ns.netns,
        readonly_root=not ns.rw_root,
        memory_limit=ns.memory_limit,
    )
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

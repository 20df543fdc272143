"""Builds the Containerfile that `ansible-builder create` writes, without a container engine.

    python scripts/ee_build.py --context DIR --work DIR --image REF=ROOTFS --config-out FILE
        [--build-arg K=V]... [--stage-dir STAGE=DIR]... [--seed STAGE:PATH=SRC]... [--host-ca FILE]

Each build stage of the Containerfile becomes a directory tree: FROM an image named by --image (a Debian
rootfs from debootstrap standing in for the pinned base image) or an earlier stage (a copy of its tree);
RUN executes in a chroot (fresh mount and PID namespaces, /proc mounted, the host's resolv.conf for the
duration, a policy-rc.d so no service starts) with the stage's ARG and ENV values, WORKDIR and USER; COPY
takes from the context or, with --from, from an earlier stage; ENV, WORKDIR, USER, LABEL, ENTRYPOINT and CMD
are recorded for the image config, which is written as JSON (--config-out) for scripts/oci.sh.

The build host's network settings reach RUN steps as an engine's would, and stay out of the image: the
host's resolv.conf, and with --host-ca FILE a CA bundle (e.g. of a TLS-intercepting egress proxy) copied in
for the duration of each RUN and named by PIP_CERT, SSL_CERT_FILE and REQUESTS_CA_BUNDLE.

The only departures from what a container engine does, each named on the command line:
- --stage-dir STAGE=DIR: STAGE is not executed; DIR is its file system (a stage FROM an image that cannot be
  pulled here, e.g. the Go toolchain image; the project builds the same binaries with Go itself);
- --seed STAGE:PATH=SRC: before STAGE's first instruction, SRC is copied to PATH in its tree (content a
  registry or Galaxy would have provided, e.g. collections from the `ansible` wheel when Galaxy is unreachable).

A stage is rebuilt only when its inputs change: a stamp hashes the parent's stamp, the instructions, the
build args, the context files its COPY lines name and the seeds. Stage trees live in --work/stages/NAME.
Needs root (chroot, unshare, mount).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST_RESOLV = Path("/etc/resolv.conf")
# Where --host-ca is put during a RUN (removed afterwards, never part of a stage's image config).
BUILD_CA = "/tmp/.ee-build-host-ca.crt"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Instruction:
    """One Containerfile instruction (continuation lines joined)."""

    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    """A build stage: its base, its name and its instructions."""

    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class ImageConfig:
    """What the final stage leaves for the image config."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "0"
    labels: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse(text: str) -> tuple[list[Instruction], list[Stage]]:
    """The global ARGs (before the first FROM) and the stages."""
    logical: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _sep, rest = buffer.strip().partition(" ")
        logical.append(Instruction(keyword.upper(), rest.strip(), start))
        buffer = ""
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for item in logical:
        if item.keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", item.args, re.IGNORECASE)
            if not match:
                raise SystemExit(f"line {item.line}: cannot read FROM {item.args}")
            stages.append(Stage(match.group(1), match.group(2) or str(len(stages))))
        elif not stages:
            if item.keyword != "ARG":
                raise SystemExit(f"line {item.line}: only ARG may come before the first FROM")
            global_args.append(item)
        else:
            stages[-1].instructions.append(item)
    return global_args, stages


def substitute(value: str, variables: dict[str, str]) -> str:
    """$NAME and ${NAME} from the build args and ENV, as a Containerfile does in FROM/COPY/ENV/WORKDIR/USER."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, value)


def key_values(args: str) -> dict[str, str]:
    """ENV/LABEL arguments: K=V pairs (shell-quoted), or the legacy `K V` form."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def json_or_shell(args: str) -> list[str]:
    if args.startswith("["):
        return list(json.loads(args))
    return ["/bin/sh", "-c", args]


def hash_paths(paths: list[Path]) -> str:
    """A hash of files and trees (path, mode, size, content) for stage stamps."""
    digest = hashlib.sha256()
    for path in paths:
        items = sorted(path.rglob("*")) if path.is_dir() else [path]
        for item in items:
            if item.is_file() and not item.is_symlink():
                digest.update(f"{item}:{item.stat().st_mode}:{item.stat().st_size}\n".encode())
                digest.update(hashlib.sha256(item.read_bytes()).digest())
            elif item.is_symlink():
                digest.update(f"{item}->{os.readlink(item)}\n".encode())
    return digest.hexdigest()


def copy_into(src: Path, dest: Path) -> None:
    """COPY semantics: a directory's contents go into dest; a file goes to dest (or into it, if dest is a dir)."""
    if src.is_dir() and not src.is_symlink():
        dest.mkdir(parents=True, exist_ok=True)
        for child in src.iterdir():
            target = dest / child.name
            if child.is_dir() and not child.is_symlink():
                copy_into(child, target)
            else:
                if target.is_symlink() or target.is_file():
                    target.unlink()
                shutil.copy2(child, target, follow_symlinks=False)
        return
    if dest.is_dir() and not dest.is_symlink():
        dest = dest / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    shutil.copy2(src, dest, follow_symlinks=False)


def inside(root: Path, path: str) -> Path:
    """A path of the stage's file system on the host (no escaping the root through ..)."""
    resolved = (root / path.lstrip("/")).resolve(strict=False)
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise SystemExit(f"{path} leaves the stage's root")
    return resolved


def copy_tree(src: Path, dest: Path) -> None:
    """A full copy of a stage tree (cp -a keeps owners, modes, links and device nodes)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(dest)], check=True)


class Builder:
    """Executes the stages of one Containerfile."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.context: Path = options.context.resolve()
        self.work: Path = options.work.resolve()
        self.images = dict(item.split("=", 1) for item in options.image)
        self.stage_dirs = {k: Path(v) for k, v in (item.split("=", 1) for item in options.stage_dir)}
        self.build_args = dict(item.split("=", 1) for item in options.build_arg)
        self.host_ca: Path | None = options.host_ca
        self.seeds: dict[str, list[tuple[str, Path]]] = {}
        for item in options.seed:
            stage_path, _sep, src = item.partition("=")
            stage, _sep, path = stage_path.partition(":")
            self.seeds.setdefault(stage, []).append((path, Path(src)))
        self.trees: dict[str, Path] = {}
        self.stamps: dict[str, str] = {}
        self.configs: dict[str, ImageConfig] = {}
        self.timings: dict[str, float] = {}

    def run(self) -> ImageConfig:
        global_args, stages = parse((self.context / "Containerfile").read_text(encoding="utf-8"))
        defaults: dict[str, str] = {}
        for item in global_args:
            name, _sep, value = item.args.partition("=")
            defaults[name] = self.build_args.get(name, value.strip('"'))
        for stage in stages:
            self.build_stage(stage, defaults)
        final = stages[-1].name
        log("stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()))
        config = self.configs[final]
        config.env.setdefault("PATH", DEFAULT_PATH)
        self.final_tree = self.trees[final]
        return config

    def base_of(self, stage: Stage, defaults: dict[str, str]) -> tuple[Path, str, ImageConfig]:
        ref = substitute(stage.base, defaults)
        if ref in self.trees:
            parent = self.configs[ref]
            config = ImageConfig(dict(parent.env), parent.workdir, parent.user, dict(parent.labels))
            config.entrypoint, config.cmd = list(parent.entrypoint), list(parent.cmd)
            return self.trees[ref], self.stamps[ref], config
        if ref not in self.images:
            raise SystemExit(f"FROM {ref}: no rootfs given for this image (--image {ref}=DIR)")
        rootfs = Path(self.images[ref])
        stamp_file = rootfs.parent / f"{rootfs.name}.stamp"
        stamp = stamp_file.read_text(encoding="utf-8") if stamp_file.is_file() else hash_paths([rootfs / "etc"])
        return rootfs, hashlib.sha256(f"{ref}\n{stamp}".encode()).hexdigest(), ImageConfig({"PATH": DEFAULT_PATH})

    def stage_stamp(self, stage: Stage, parent_stamp: str, defaults: dict[str, str]) -> str:
        digest = hashlib.sha256(parent_stamp.encode())
        digest.update(json.dumps(defaults, sort_keys=True).encode())
        for item in stage.instructions:
            digest.update(f"{item.keyword} {item.args}\n".encode())
            if item.keyword == "COPY" and "--from=" not in item.args:
                for src in shlex.split(item.args)[:-1]:
                    digest.update(hash_paths([self.context / substitute(src, defaults)]).encode())
            if item.keyword == "COPY" and "--from=" in item.args:
                source = re.search(r"--from=(\S+)", item.args).group(1)
                digest.update(self.stamps.get(source, source).encode())
        for path, src in self.seeds.get(stage.name, []):
            digest.update(f"seed {path} {hash_paths([src])}".encode())
        return digest.hexdigest()

    def build_stage(self, stage: Stage, defaults: dict[str, str]) -> None:
        if stage.name in self.stage_dirs:
            tree = self.stage_dirs[stage.name].resolve()
            log(f"stage {stage.name}: provided by {tree} (FROM {substitute(stage.base, defaults)} is not run here)")
            self.trees[stage.name] = tree
            self.stamps[stage.name] = hash_paths([tree])
            self.configs[stage.name] = ImageConfig()
            return
        parent_tree, parent_stamp, config = self.base_of(stage, defaults)
        stamp = self.stage_stamp(stage, parent_stamp, defaults)
        tree = self.work / "stages" / stage.name
        stamp_file = self.work / "stages" / f"{stage.name}.stamp"
        config_file = self.work / "stages" / f"{stage.name}.config.json"
        self.stamps[stage.name] = stamp
        self.trees[stage.name] = tree
        if tree.is_dir() and stamp_file.is_file() and stamp_file.read_text() == stamp and config_file.is_file():
            self.configs[stage.name] = ImageConfig(**json.loads(config_file.read_text()))
            log(f"stage {stage.name}: unchanged")
            return
        start = time.monotonic()
        log(f"stage {stage.name}: FROM {substitute(stage.base, defaults)}")
        stamp_file.unlink(missing_ok=True)
        copy_tree(parent_tree, tree)
        for path, src in self.seeds.get(stage.name, []):
            log(f"stage {stage.name}: seed {path} from {src}")
            copy_into(src, inside(tree, path))
        args = dict(defaults)
        for item in stage.instructions:
            self.execute(stage, tree, item, args, config)
        stamp_file.write_text(stamp)
        config_file.write_text(json.dumps(config.__dict__))
        self.configs[stage.name] = config
        self.timings[stage.name] = time.monotonic() - start

    def execute(self, stage: Stage, tree: Path, item: Instruction, args: dict[str, str], config: ImageConfig) -> None:
        variables = {**args, **config.env}
        keyword = item.keyword
        if keyword == "ARG":
            name, sep, value = item.args.partition("=")
            if name in self.build_args:
                args[name] = self.build_args[name]
            elif sep:
                args[name] = substitute(value.strip('"'), variables)
            else:
                args.setdefault(name, "")
        elif keyword == "ENV":
            config.env.update({k: substitute(v, variables) for k, v in key_values(item.args).items()})
        elif keyword == "WORKDIR":
            config.workdir = substitute(item.args, variables)
            inside(tree, config.workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "USER":
            config.user = substitute(item.args, variables)
        elif keyword == "LABEL":
            config.labels.update(key_values(item.args))
        elif keyword == "ENTRYPOINT":
            config.entrypoint = json_or_shell(item.args)
        elif keyword == "CMD":
            config.cmd = json_or_shell(item.args)
        elif keyword == "COPY":
            words = shlex.split(item.args)
            source_root = self.context
            if words[0].startswith("--from="):
                source_root = self.trees[words.pop(0).split("=", 1)[1]]
            *sources, dest = (substitute(w, variables) for w in words)
            target = dest if dest.startswith("/") else f"{config.workdir.rstrip('/')}/{dest}"
            for src in sources:
                origin = inside(source_root, src) if source_root != self.context else self.context / src
                if not origin.exists():
                    raise SystemExit(f"{stage.name} line {item.line}: COPY {src}: not found")
                copy_into(origin, inside(tree, target))
        elif keyword == "RUN":
            self.run_step(stage, tree, item, args, config)
        else:
            raise SystemExit(f"{stage.name} line {item.line}: {keyword} is not supported")

    def run_step(self, stage: Stage, tree: Path, item: Instruction, args: dict[str, str], config: ImageConfig) -> None:
        command = json_or_shell(item.args)
        env = {**args, **config.env}
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", "/root")
        ca_copy = inside(tree, BUILD_CA)
        if self.host_ca:
            env.update(PIP_CERT=BUILD_CA, SSL_CERT_FILE=BUILD_CA, REQUESTS_CA_BUNDLE=BUILD_CA)
        log(f"{stage.name}: RUN {item.args[:150]}{'...' if len(item.args) > 150 else ''}")
        resolv = tree / "etc" / "resolv.conf"
        saved = resolv.read_bytes() if resolv.is_file() and not resolv.is_symlink() else None
        policy = tree / "usr" / "sbin" / "policy-rc.d"
        had_policy = policy.exists()
        try:
            if resolv.is_symlink():
                resolv.unlink()
            shutil.copy2(HOST_RESOLV, resolv)
            if self.host_ca:
                ca_copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.host_ca, ca_copy)
                ca_copy.chmod(0o644)
            if not had_policy:
                policy.write_text("#!/bin/sh\nexit 101\n")
                policy.chmod(0o755)
            user = config.user or "0"
            uid, _sep, gid = user.partition(":")
            prefix = []
            if uid not in ("0", "root"):
                prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid or '0'}", "--clear-groups"]
            argv = [
                "unshare", "--mount", "--pid", "--fork", f"--mount-proc={tree / 'proc'}",
                "chroot", str(tree), "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()],
                "/bin/sh", "-c", 'cd "$0" && exec "$@"', config.workdir, *prefix, *command,
            ]  # fmt: skip
            # The steps' output goes to stderr with the build log; stdout is left to the caller.
            proc = subprocess.run(argv, check=False, stdout=sys.stderr)
            if proc.returncode != 0:
                raise SystemExit(f"{stage.name} line {item.line}: RUN exited {proc.returncode}: {item.args}")
        finally:
            if saved is None:
                resolv.write_text("")
            else:
                resolv.write_bytes(saved)
            if not had_policy:
                policy.unlink(missing_ok=True)
            ca_copy.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--context", type=Path, required=True, help="the directory ansible-builder create wrote")
    parser.add_argument("--work", type=Path, required=True, help="where stage trees and stamps are kept")
    parser.add_argument("--image", action="append", default=[], metavar="REF=ROOTFS")
    parser.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    parser.add_argument("--stage-dir", action="append", default=[], metavar="STAGE=DIR")
    parser.add_argument("--seed", action="append", default=[], metavar="STAGE:PATH=SRC")
    parser.add_argument("--host-ca", type=Path, help="CA bundle the RUN steps trust (the build host's)")
    parser.add_argument("--config-out", type=Path, required=True, help="the final stage's image config (JSON)")
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("ee_build.py needs root (chroot, unshare, mount)")
    builder = Builder(options)
    config = builder.run()
    options.config_out.write_text(json.dumps({**config.__dict__, "rootfs": str(builder.final_tree)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

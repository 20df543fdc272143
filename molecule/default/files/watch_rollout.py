"""Watch a Deployment's ReplicaSets during a rollout and report the extremes it went through.

The rollout promise (maxSurge 1, maxUnavailable 0) is about every moment of the rollout, which the objects
left afterwards cannot show; so this watches the ReplicaSets owned by the Deployment while the upgrade runs
and records, after every event, the sum of Ready pods and the sum of pods across them. It prints one JSON
object: {"events", "min_ready", "max_pods", "desired", "revisions"} and exits when the Deployment has
finished rolling out to a new ReplicaSet or the timeout expires. Completion is judged from the watched
events themselves, not from a fresh read of the Deployment, so that every buffered event is counted even
when the rollout finishes faster than the events are processed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kubernetes import client, config, watch


def owned_by(rs: client.V1ReplicaSet, uid: str) -> bool:
    return any(ref.uid == uid for ref in rs.metadata.owner_references or [])


def totals(replicasets: dict[str, client.V1ReplicaSet]) -> tuple[int, int]:
    ready = sum((rs.status.ready_replicas or 0) for rs in replicasets.values())
    pods = sum((rs.status.replicas or 0) for rs in replicasets.values())
    return ready, pods


def revision(rs: client.V1ReplicaSet) -> int:
    return int((rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision", "0"))


def rolled_out(replicasets: dict[str, client.V1ReplicaSet], start_revision: int, desired: int) -> bool:
    """The newest ReplicaSet is past the starting revision, holds every Ready pod, and the others are empty."""
    if not replicasets:
        return False
    newest = max(replicasets.values(), key=revision)
    others = [rs for rs in replicasets.values() if rs is not newest]
    return (
        revision(newest) > start_revision
        and (newest.status.ready_replicas or 0) == desired
        and (newest.status.replicas or 0) == desired
        and all((rs.status.replicas or 0) == 0 for rs in others)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--ready-file", type=Path, help="written once the watch has started")
    args = parser.parse_args()

    config.load_kube_config(config_file=args.kubeconfig)
    apps = client.AppsV1Api()
    deploy = apps.read_namespaced_deployment(args.deployment, args.namespace)
    uid, desired = deploy.metadata.uid, deploy.spec.replicas or 0
    start_revision = int(deploy.metadata.annotations.get("deployment.kubernetes.io/revision", "0"))

    replicasets: dict[str, client.V1ReplicaSet] = {}
    listing = apps.list_namespaced_replica_set(args.namespace)
    for rs in listing.items:
        if owned_by(rs, uid):
            replicasets[rs.metadata.name] = rs
    min_ready, max_pods = totals(replicasets)
    events, revisions = 0, {str(start_revision)}
    deadline = time.monotonic() + args.timeout
    stream = watch.Watch()
    if args.ready_file:
        args.ready_file.write_text(listing.metadata.resource_version)
    for event in stream.stream(
        apps.list_namespaced_replica_set,
        args.namespace,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=args.timeout,
    ):
        rs = event["object"]
        if not owned_by(rs, uid):
            continue
        events += 1
        if event["type"] == "DELETED":
            replicasets.pop(rs.metadata.name, None)
        else:
            replicasets[rs.metadata.name] = rs
            revisions.add(str(revision(rs)))
        ready, pods = totals(replicasets)
        min_ready, max_pods = min(min_ready, ready), max(max_pods, pods)
        if rolled_out(replicasets, start_revision, desired) or time.monotonic() > deadline:
            stream.stop()
    result = {
        "events": events,
        "min_ready": min_ready,
        "max_pods": max_pods,
        "desired": desired,
        "revisions": sorted(revisions, key=int),
        "completed": rolled_out(replicasets, start_revision, desired),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Watch a Deployment's ReplicaSets during a rollout and report the extremes it went through.

The rollout promise (maxSurge 1, maxUnavailable 0) is about every moment of the rollout, which the objects
left afterwards cannot show; so this watches the ReplicaSets owned by the Deployment while the upgrade runs
and records, after every event, the sum of Ready pods and the sum of pods across them. It prints one JSON
object: {"events", "min_ready", "max_pods", "desired", "revisions"} and exits when the Deployment has
finished rolling out to a new ReplicaSet or the timeout expires.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from kubernetes import client, config, watch


def owned_by(rs: client.V1ReplicaSet, uid: str) -> bool:
    return any(ref.uid == uid for ref in rs.metadata.owner_references or [])


def totals(replicasets: dict[str, client.V1ReplicaSet]) -> tuple[int, int]:
    ready = sum((rs.status.ready_replicas or 0) for rs in replicasets.values())
    pods = sum((rs.status.replicas or 0) for rs in replicasets.values())
    return ready, pods


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--kubeconfig")
    args = parser.parse_args()

    config.load_kube_config(config_file=args.kubeconfig)
    apps = client.AppsV1Api()
    deploy = apps.read_namespaced_deployment(args.deployment, args.namespace)
    uid, desired = deploy.metadata.uid, deploy.spec.replicas or 0
    start_revision = deploy.metadata.annotations.get("deployment.kubernetes.io/revision", "0")

    replicasets: dict[str, client.V1ReplicaSet] = {}
    listing = apps.list_namespaced_replica_set(args.namespace)
    for rs in listing.items:
        if owned_by(rs, uid):
            replicasets[rs.metadata.name] = rs
    min_ready, max_pods = totals(replicasets)
    events, revisions = 0, {start_revision}
    deadline = time.monotonic() + args.timeout
    stream = watch.Watch()
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
            revisions.add((rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision", "0"))
        ready, pods = totals(replicasets)
        min_ready, max_pods = min(min_ready, ready), max(max_pods, pods)
        current = apps.read_namespaced_deployment_status(args.deployment, args.namespace)
        done = (
            current.metadata.annotations.get("deployment.kubernetes.io/revision") != start_revision
            and (current.status.updated_replicas or 0) == desired
            and (current.status.ready_replicas or 0) == desired
            and (current.status.replicas or 0) == desired
        )
        if done or time.monotonic() > deadline:
            stream.stop()
    result = {
        "events": events,
        "min_ready": min_ready,
        "max_pods": max_pods,
        "desired": desired,
        "revisions": sorted(revisions),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

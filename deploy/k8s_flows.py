"""Evaluates the NetworkPolicies of a rendered overlay against the flows the
platform needs: every needed flow must be allowed and nothing else.

    kubectl kustomize k8s/overlays/prod | python3 deploy/k8s_flows.py

A small model of Kubernetes NetworkPolicy semantics (podSelector with
matchLabels, namespaceSelector on kubernetes.io/metadata.name, ipBlock with
except, ports with endPort and protocol): a flow from A to B on a port is
allowed when A's egress and B's ingress both allow it; a pod no policy of
that direction selects is not isolated in it. ipBlock peers match only
addresses outside the cluster's pods, as the Kubernetes documentation leaves
pod addresses in ipBlocks to the implementation.
"""

import ipaddress
import sys

import yaml

CRM = "crm"


def endpoint(name, namespace, labels, ports=(), ip=None):
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ports": [p if isinstance(p, tuple) else (p, "TCP") for p in ports],
        "ip": ip,
    }


API = {"app.kubernetes.io/part-of": "crm", "app.kubernetes.io/component": "api"}

# The pods (and outside addresses) of a production installation.
INVENTORY = [
    endpoint("gateway", CRM, {**API, "app.kubernetes.io/name": "gateway"}, [8080, 9080]),
    endpoint("customers", CRM, {**API, "app.kubernetes.io/name": "customers"}, [50051, 51051]),
    endpoint("sales", CRM, {**API, "app.kubernetes.io/name": "sales"}, [50052, 51052]),
    endpoint("marketing", CRM, {**API, "app.kubernetes.io/name": "marketing"}, [50053, 51053]),
    endpoint("servicedesk", CRM, {**API, "app.kubernetes.io/name": "servicedesk"}, [50054, 51054, 2525]),
    endpoint("reporting", CRM, {**API, "app.kubernetes.io/name": "reporting"}, [50055, 51055]),
    endpoint("nats-0", CRM, {"app.kubernetes.io/name": "nats"}, [4222, 6222, 8222]),
    endpoint("nats-1", CRM, {"app.kubernetes.io/name": "nats"}, [4222, 6222, 8222]),
    *[
        endpoint(f"{db}-{n}", CRM, {"cnpg.io/cluster": db}, [5432, 8000, 9187])
        for db in ("customers-db", "sales-db", "marketing-db", "servicedesk-db", "reporting-db", "gateway-db")
        for n in (1, 2)
    ],
    endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, [(53, "UDP"), (53, "TCP")]),
    endpoint("ingress", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    endpoint("otel-collector", "monitoring", {"app.kubernetes.io/name": "otel-collector"}, [4317]),
    endpoint("cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}),
    endpoint("kube-api", None, {}, [443, 6443], ip="10.0.0.1"),
    endpoint("internet", None, {}, [443, 80, 25, 465, 587], ip="203.0.113.10"),
]


def needed():
    """(source, destination, port, protocol) the platform needs."""
    flows = set()
    apps = ["gateway", "customers", "sales", "marketing", "servicedesk", "reporting"]
    dbs = {
        "customers": "customers-db",
        "sales": "sales-db",
        "marketing": "marketing-db",
        "servicedesk": "servicedesk-db",
        "reporting": "reporting-db",
        "gateway": "gateway-db",
    }
    nats = ["nats-0", "nats-1"]

    def add(src, dst, port, proto="TCP"):
        if src != dst:
            flows.add((src, dst, port, proto))

    add("ingress", "gateway", 8080)
    add("prometheus", "gateway", 9080)
    add("prometheus", "customers", 51051)
    add("prometheus", "sales", 51052)
    add("prometheus", "marketing", 51053)
    add("prometheus", "servicedesk", 51054)
    add("prometheus", "reporting", 51055)
    add("gateway", "customers", 50051)
    add("gateway", "sales", 50052)
    add("sales", "customers", 50051)
    add("gateway", "marketing", 50053)
    add("gateway", "servicedesk", 50054)
    add("gateway", "reporting", 50055)
    # Reconciliations read the sources' list APIs.
    add("reporting", "sales", 50052)
    add("reporting", "servicedesk", 50054)
    add("servicedesk", "customers", 50051)
    add("marketing", "customers", 50051)
    # Automation rules' lead and ticket actions.
    add("marketing", "sales", 50052)
    add("marketing", "servicedesk", 50054)
    add("gateway", "internet", 443)
    for smtp in (25, 465, 587):
        add("marketing", "internet", smtp)
    # Support mail: the organisation's mail exchanger delivers to the
    # desk's SMTP listener, and replies leave through the mail relay.
    add("internet", "servicedesk", 2525)
    for smtp in (25, 465, 587):
        add("servicedesk", "internet", smtp)
    # Scheduled reports leave through the mail relay.
    for smtp in (25, 465, 587):
        add("reporting", "internet", smtp)
    # The SMS provider's HTTPS API and automation rules' webhooks.
    add("marketing", "internet", 443)
    for app in apps:
        for dns_proto in ("UDP", "TCP"):
            add(app, "kube-dns", 53, dns_proto)
        for n in nats:
            add(app, n, 4222)
        add(app, "gateway", 8080)
        add(app, "otel-collector", 4317)
        for i in (1, 2):
            add(app, f"{dbs[app]}-{i}", 5432)
    for a in nats:
        add("prometheus", a, 8222)
        for b in nats:
            add(a, b, 6222)
        for dns_proto in ("UDP", "TCP"):
            add(a, "kube-dns", 53, dns_proto)
    for db in dbs.values():
        for i in (1, 2):
            inst = f"{db}-{i}"
            add("prometheus", inst, 9187)
            for port in (5432, 8000):
                add("cnpg-operator", inst, port)
                for j in (1, 2):
                    add(f"{db}-{j}", inst, port)
            for port in (443, 6443):
                add(inst, "kube-api", port)
            for dns_proto in ("UDP", "TCP"):
                add(inst, "kube-dns", 53, dns_proto)
    return flows


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def peer_matches(peer, policy_ns, ep):
    if "ipBlock" in peer:
        if ep["ip"] is None:
            return False
        addr = ipaddress.ip_address(ep["ip"])
        block = peer["ipBlock"]
        return addr in ipaddress.ip_network(block["cidr"]) and not any(
            addr in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if ep["namespace"] is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": ep["namespace"]}
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif ep["namespace"] != policy_ns:
        return False
    return selects(peer.get("podSelector", {}), ep["labels"])


def port_matches(rule_ports, port, proto):
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != proto:
            continue
        start = p.get("port")
        if start is None or start <= port <= p.get("endPort", start):
            return True
    return False


def allows(policies, ep, other, port, proto, direction):
    """Whether `ep`'s policies of `direction` let it talk with `other`."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", "default") == ep["namespace"]
        and selects(p["spec"].get("podSelector"), ep["labels"])
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if not port_matches(rule.get("ports"), port, proto):
                continue
            if not peers or any(
                peer_matches(peer, policy["metadata"].get("namespace", "default"), other) for peer in peers
            ):
                return True
    return False


def main():
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    problems = []
    for policy in policies:
        if policy["metadata"].get("namespace") != CRM:
            problems.append(f"NetworkPolicy {policy['metadata']['name']} is not in namespace {CRM}")
    allowed = set()
    for src in INVENTORY:
        for dst in INVENTORY:
            if src is dst or dst["ip"] is not None and src["ip"] is not None:
                continue
            ours = CRM in (src["namespace"], dst["namespace"])
            if not ours:
                continue
            for port, proto in dst["ports"]:
                if src["namespace"] is None:
                    egress = True
                else:
                    egress = allows(policies, src, dst, port, proto, "Egress")
                ingress = dst["namespace"] is None or allows(
                    policies, dst, src, port, proto, "Ingress"
                )
                if egress and ingress:
                    allowed.add((src["name"], dst["name"], port, proto))
    want = needed()
    for flow in sorted(want - allowed):
        problems.append("needed but refused: {} -> {}:{}/{}".format(*flow))
    for flow in sorted(allowed - want):
        problems.append("allowed but not needed: {} -> {}:{}/{}".format(*flow))
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"network policies: {len(policies)} policies, {len(want)} needed flows allowed, nothing else")


if __name__ == "__main__":
    main()

"""The hook server's install: only Metacontroller reaches it, and only with the token of one Secret."""

from tests.unit.test_manifests import controllers, objects

SECRET = {"name": "elastic-jupyter-hooks-auth", "namespace": "elastic-jupyter-system", "key": "token"}


def hook_server() -> dict:
    return next(o for o in objects() if o["kind"] == "Deployment" and o["metadata"]["name"] == "elastic-jupyter-hooks")


def test_only_metacontrollers_pods_reach_the_hook_server():
    policies = [o for o in objects() if o["kind"] == "NetworkPolicy"]
    assert len(policies) == 1
    policy = policies[0]
    server = hook_server()
    assert policy["metadata"]["namespace"] == server["metadata"]["namespace"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items() <= server["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    # Upstream's manifests/production: namespace metacontroller, pods app.kubernetes.io/name=metacontroller.
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "metacontroller"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "metacontroller"}},
        }
    ]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_the_hook_server_reads_its_token_from_the_secret_metacontroller_sends():
    pod = hook_server()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    token_file = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--token-file="))
    [mount] = [m for m in container["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == SECRET["name"]
    [item] = volume["secret"]["items"]
    assert (item["key"], f"{mount['mountPath']}/{item['path']}") == (SECRET["key"], token_file)
    assert hook_server()["metadata"]["namespace"] == SECRET["namespace"]
    assert not [e for e in container.get("env") or [] if "TOKEN" in e["name"]], "no secret in the environment"


def test_every_hook_call_carries_the_bearer_token():
    for name, controller in controllers().items():
        for hook, spec in controller["spec"]["hooks"].items():
            assert spec["webhook"]["authorization"] == {"type": "Bearer", "secretRef": SECRET}, (name, hook)


def test_no_secret_is_committed():
    assert not [o for o in objects() if o["kind"] == "Secret"]

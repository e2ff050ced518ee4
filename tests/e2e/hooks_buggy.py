"""A hook server with a bug that matters: the gateway's RoleBinding binds cluster-admin.

Served with `uvicorn --factory hooks_buggy:create_app` (the "RBAC enforces the approval" scenario);
importing this module changes nothing. With the install's narrowed ClusterRole, Metacontroller may
bind only the approved kernel roles, so the API server refuses what this hook returns.
"""


def create_app():
    import hooks.app

    correct = hooks.app.sync_gateway

    def sync_gateway(*args):
        response = correct(*args)
        for child in response["children"]:
            if child["kind"] == "RoleBinding":
                child["roleRef"]["name"] = "cluster-admin"
        return response

    hooks.app.sync_gateway = sync_gateway
    return hooks.app.app

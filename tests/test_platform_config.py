"""``llmops apply|diff|export`` against a real gateway and feedback service: apply is idempotent (the second apply
changes nothing, no new revisions) and atomic (a bad file changes nothing), errors name the field and its line, an
export re-applies to no change, ``--prune`` deletes what the file leaves out; a prompt reference that does not
resolve in MLflow is such an error. ``llmops routes history|revert``: the revisions every change writes."""

import json
import uuid
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from llmops_cli.main import app

UPSTREAM = "http://127.0.0.1:9/v1"  # never called: these tests change configuration only
FILE = """\
apiVersion: llmops/v1
routes:
  support-bot:
    variants:
      - {{name: base, upstream: "{upstream}", model: base-model, weight: 90}}
      - name: tuned
        upstream: "{upstream}"
        model: tuned-model
        weight: 10
    fallbacks: [base]
    rag: {{collection: kb, top_k: 1}}
keys:
  {key}:
    limits: {{rpm: 60, tpm: 10000}}
    allowed_routes: [support-bot]
    allowed_collections: [kb]
retraining:
  support-bot:
    model_name: support-bot
    champion: base
    min_examples: 20
    experiment: {{steps: [0.1, 0.5], min_ratings_per_arm: 50}}
"""


@pytest.fixture(scope="module")
def platform(make_gateway, make_feedback, llmops_state_dir, mlflow_server):
    """A gateway and feedback service of their own (``--prune`` deletes what other tests made), one admin token; the
    gateway resolves prompt references in the real MLflow."""
    run = uuid.uuid4().hex[:6]
    gateway = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'config-gw-{run}.db'}", GATEWAY_MLFLOW_URL=mlflow_server.url
    )
    feedback = make_feedback(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'config-fb-{run}.db'}",
        FEEDBACK_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_EXPERIMENT_CONTROLLER="false",
    )
    env = {
        "LLMOPS_GATEWAY_URL": gateway.url,
        "LLMOPS_FEEDBACK_URL": feedback.url,
        "LLMOPS_ADMIN_TOKEN": gateway.admin_token,
    }
    key_name = f"frontend-{run}"
    gateway.create_key(name=key_name)
    return gateway, env, key_name, FILE.format(upstream=UPSTREAM, key=key_name)


def llmops(*args: str, env: dict[str, str], check: bool = True):
    """The CLI in this process (a subprocess per command cost about a second each on 2 busy cores)."""
    result = CliRunner(env={**env, "COLUMNS": "200"}).invoke(app, list(args))
    assert not check or result.exit_code == 0, result.output
    return SimpleNamespace(
        returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr, error=result.exception
    )


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_apply_is_idempotent_and_export_reapplies_to_no_change(platform, tmp_path):
    gateway, env, key_name, text = platform
    path = tmp_path / "platform.yaml"
    path.write_text(text)
    stale = gateway.put_route("stale", variants=[{"name": "a", "upstream": UPSTREAM, "model": "m"}])

    diff = llmops("diff", "-f", str(path), "--exit-code", env=env, check=False)
    assert diff.returncode == 2, diff.stderr
    for line in ("+ route support-bot (create)", f"~ key {key_name} (update)", "+ retraining support-bot (create)"):
        assert line in diff.stdout
    assert "+  rpm: 60" in diff.stdout and "stale" not in diff.stdout  # no --prune: nothing deleted

    assert "3 object(s) changed" in llmops("apply", "-f", str(path), env=env).stdout
    with gateway.admin() as admin:
        route = admin.get("/admin/routes/support-bot").json()
        assert [v["weight"] for v in route["variants"]] == [90, 10] and route["rag"]["top_k"] == 1
        key = next(k for k in admin.get("/admin/keys").json()["data"] if k["name"] == key_name)
        assert key["limits"]["rpm"] == 60 and key["allowed_routes"] == ["support-bot"]
        assert key["allowed_collections"] == ["kb"]
        policy = admin.get(env["LLMOPS_FEEDBACK_URL"] + "/v1/retraining/support-bot").json()
        assert policy["min_examples"] == 20 and policy["experiment"]["steps"] == [0.1, 0.5]

        # Twice: nothing to do, no new revision.
        assert "no changes" in llmops("apply", "-f", str(path), env=env).stdout
        assert llmops("diff", "-f", str(path), "--exit-code", env=env).returncode == 0
        assert len(admin.get("/admin/routes/support-bot/revisions").json()["data"]) == 1

        exported = tmp_path / "exported.yaml"
        llmops("export", "-o", str(exported), env=env)
        again = llmops("diff", "-f", str(exported), "--prune", "--exit-code", env=env, check=False)
        assert again.returncode == 0, again.stdout + again.stderr

        changed = tmp_path / "changed.yaml"
        changed.write_text(text.replace("weight: 90", "weight: 50"))
        pruned = llmops("diff", "-f", str(changed), "--prune", env=env).stdout
        assert "~ route support-bot (update)" in pruned and "-  weight: 90" in pruned
        assert "+  weight: 50" in pruned and f"- route {stale} (delete)" in pruned
        llmops("apply", "-f", str(changed), "--prune", env=env)
        assert admin.get(f"/admin/routes/{stale}").status_code == 404
        assert admin.get("/admin/routes/support-bot").json()["variants"][0]["weight"] == 50


@pytest.mark.parametrize(
    ("edit", "field", "needle"),
    [
        pytest.param(("weight: 10", "weight: -1"), "routes.support-bot.variants.1.weight", "weight: -1", id="route"),
        pytest.param(
            ("min_examples: 20", "min_examples: 0"), "retraining.support-bot.min_examples", "min_exa", id="fb"
        ),
        pytest.param(("champion: base", "champion: nope"), "retraining.support-bot.champion", "champion:", id="champ"),
        pytest.param(("keys:\n  ", "keys:\n  ghost: {}\n  "), "ghost", "ghost: {}", id="missing-key"),
        pytest.param(("routes:", "routs:"), "routs", "routs:", id="unknown-section"),
        pytest.param(
            ("model: tuned-model", "model: tuned-model\n        prompt: prompts:/never-registered@production"),
            "routes.support-bot.variants.1.prompt",
            "prompt: prompts:/never",
            id="prompt",
        ),
        pytest.param(("fallbacks: [base]", "fallbacks: [base"), "not valid YAML", "rag:", id="yaml"),
        pytest.param(
            ("    fallbacks", "    sticky: true\n    sticky: false\n    fallbacks"), "duplicate", "sticky: f", id="dup"
        ),
    ],
)
def test_a_bad_file_changes_nothing_and_names_the_field_and_line(platform, tmp_path, edit, field, needle):
    gateway, env, _, text = platform
    text = text.replace("support-bot", "fresh-bot").replace(edit[0], edit[1].replace("support-bot", "fresh-bot"), 1)
    field = field.replace("support-bot", "fresh-bot")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    # `diff` validates by the same path (the plan) as `apply`.
    result = llmops("apply", "-f", str(path), env=env, check=False)
    assert result.returncode == 1 and isinstance(result.error, SystemExit), result.error  # a clear error, no crash
    # The error line wraps at the terminal's width wherever a long path puts it: compare without whitespace.
    message = "".join(result.stderr.split())
    assert f"{path}:{_line(text, needle)}:" in message and field.replace(" ", "") in message, result.stderr
    with gateway.admin() as admin:
        assert admin.get("/admin/routes/fresh-bot").status_code == 404
        assert admin.get(env["LLMOPS_FEEDBACK_URL"] + "/v1/retraining/fresh-bot").status_code == 404


def test_routes_history_and_revert(platform):
    """``llmops routes history`` shows who changed what and when; ``revert`` gives the route back exactly."""
    gateway, env, _, _ = platform
    name = f"hist-{uuid.uuid4().hex[:6]}"
    a, b = f"name=a,upstream={UPSTREAM},model=m", f"name=b,upstream={UPSTREAM},model=m2"
    llmops(
        "routes", "put", name, "--variant", f"{a},weight=90", "--variant", f"{b},weight=10", "--fallback", "b", env=env
    )
    with gateway.admin() as admin:
        original = admin.get(f"/admin/routes/{name}").json()
        editor = admin.post("/admin/identities", json={"name": f"ed-{name}", "role": "admin"}).json()
    # A second admin changes the split: the history names each actor.
    as_editor = {**env, "LLMOPS_ADMIN_TOKEN": editor["token"]}
    llmops(
        "routes",
        "put",
        name,
        "--variant",
        f"{a},weight=50",
        "--variant",
        f"{b},weight=50",
        "--no-sticky",
        env=as_editor,
    )

    revisions = json.loads(llmops("routes", "history", name, "--json", env=env).stdout)
    assert [(r["revision"], r["action"], r["actor"]) for r in revisions] == [
        (2, "update", editor["id"]),
        (1, "create", "platform"),
    ]
    table = llmops("routes", "history", name, env=env).stdout
    for needle in ("variants.0.weight: 90.0 -> 50.0", "sticky: true -> false", "create", "platform"):
        assert needle in table, table
    assert all(r["at"][:19].replace("T", " ") in table for r in revisions), table

    assert "reverted to revision 1" in llmops("routes", "revert", name, "1", env=env).stdout
    with gateway.admin() as admin:
        restored = admin.get(f"/admin/routes/{name}").json()
    assert {**restored, "updated_at": None} == {**original, "updated_at": None}
    latest = json.loads(llmops("routes", "history", name, "--json", env=env).stdout)[0]
    assert (latest["revision"], latest["action"], latest["changes"][0]) == (3, "revert", "revert to revision 1")

    # Bad revisions: the gateway's error and exit 1, never a traceback; not a number: a usage error (exit 2).
    missing = llmops("routes", "revert", name, "9", env=env, check=False)
    assert missing.returncode == 1 and isinstance(missing.error, SystemExit), missing.error
    assert f"route {name!r} has no revision 9" in " ".join(missing.stderr.split()), missing.stderr
    assert llmops("routes", "revert", name, "x", env=env, check=False).returncode == 2
    unknown = llmops("routes", "history", f"{name}-nope", env=env, check=False)
    assert unknown.returncode == 1 and "has no revisions" in unknown.stderr, unknown.stderr
    with gateway.admin() as admin:  # none of them changed anything
        assert len(admin.get(f"/admin/routes/{name}/revisions").json()["data"]) == 3

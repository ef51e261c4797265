"""`theo up`, `theo down`, `theo status`: the Ray cluster and the model applications."""

from __future__ import annotations

import argparse

from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def cmd_up(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.models.prepare import prepare_models
    from theo_ray.runtime.ray_cluster import start_or_join
    from theo_ray.runtime.serve_apps import deploy_models

    say("[bold]Preparing models[/bold] (one-time assembly; fast when nothing changed)")
    prepare_models(config, say)
    say("[bold]Ray[/bold]")
    import os
    from theo_ray.telemetry.tracing import telemetry_env_for

    # Every Theo process traces as telemetry.* says (JSON lines under the output folder, OTLP),
    # inherited by the cluster it starts; the plane's actors and replicas also get it as runtime_env.
    for key, value in telemetry_env_for(config.telemetry, config.paths.output_dir).items():
        os.environ.setdefault(key, value)
    start_or_join(config.ray, say)
    say("[bold]Deploying models on Ray Serve[/bold]")
    handles = deploy_models(config, say=say)
    say("[bold]Call plane[/bold]")
    import asyncio

    from theo_ray.runtime.call_plane import start_call_plane

    from theo_ray.asterisk.errors import AmiAuthenticationFailed

    async def plane_and_health() -> None:
        plane = await start_call_plane(config, handles, say)
        if config.health.enabled:
            from theo_ray.runtime.health import readiness_targets, start_health_server

            await start_health_server(config, readiness_targets(config, plane), say=say)

    try:
        asyncio.run(plane_and_health())
    except AmiAuthenticationFailed as exc:
        return _ami_refused(config, str(exc))
    if config.call.use_ami:
        problem = _ami_problem()
        if problem:
            return _ami_refused(config, problem)
    say("[green]Theo is up.[/green] `theo status` shows it; `theo down` stops what `theo up` started.")
    return 0


def _ami_problem() -> str:
    """Why the AmiBridge holds no logged-in AMI session ("" when it does)."""
    import ray

    from theo_ray.actor_names import AMI_BRIDGE

    try:
        health = ray.get(ray.get_actor(AMI_BRIDGE).health.remote(), timeout=10)
    except Exception as exc:  # noqa: BLE001 - whatever stops the check is the reason
        return f"the AMI bridge does not answer ({type(exc).__name__})"
    return "" if health.logged_in else f"AMI not logged in: {health.reason}"


def _ami_refused(config: TheoConfig, problem: str) -> int:
    """`theo up` with call.use_ami and no AMI session: say so loudly, never "Theo is up".

    The AMI bridge is removed so that the next `theo up` (secret or permit fixed) starts a
    fresh one instead of finding this one by name."""
    import ray

    from theo_ray.actor_names import AMI_BRIDGE

    try:
        ray.kill(ray.get_actor(AMI_BRIDGE))
    except Exception:  # noqa: BLE001 - already gone
        pass
    ami = config.asterisk.ami
    say(f"[bold red]Theo is NOT up: call.use_ami is on and {problem}.[/bold red]\n"
        f"  Transfers and hang-ups go through AMI at {ami.host}:{ami.tls_port if ami.tls else ami.port} "
        f"as '{ami.username}'. Check {ami.secret_env} (or asterisk.ami.secret_file) against manager.conf, "
        f"and that its permit= lists the address Theo connects from "
        f"({config.asterisk.ami_source_address() or 'any'}). `theo down` stops what was started.")
    return 1


def cmd_down(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.runtime.ray_cluster import stop

    stop(config.ray, say)  # ends the call plane's detached actors with the cluster
    return 0


def cmd_status(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.runtime.ray_auth import ensure_auth_token
    from theo_ray.runtime.ray_cluster import read_state

    ensure_auth_token()
    import ray
    from ray import serve

    state = read_state(config.ray)
    address = config.ray.address or (state.address if state else None)
    if not address:
        say("no cluster: run `theo up` (or set ray.address)")
        return 1
    ray.init(address=address, namespace=config.ray.namespace, log_to_driver=False)
    say(f"Ray cluster {address}" + (f", dashboard {state.dashboard_url} (bearer token: ~/.ray/auth_token)" if state else ""))
    resources = Table("resource", "total", "available")
    total, available = ray.cluster_resources(), ray.available_resources()
    for name in sorted(k for k in total if not k.startswith("node:")):
        resources.add_row(name, f"{total[name]:g}", f"{available.get(name, 0):g}")
    console.print(resources)
    apps = Table("application", "status", "deployment", "replicas (state: count)")
    for app_name, app in serve.status().applications.items():
        for dep_name, dep in app.deployments.items():
            replicas = ", ".join(f"{s}: {n}" for s, n in dep.replica_states.items()) or "-"
            apps.add_row(app_name, getattr(app.status, "value", str(app.status)), dep_name, replicas)
    console.print(apps)
    _print_tts_breaker(serve)
    from theo_ray.actor_names import SUPERVISOR
    from theo_ray.runtime.call_plane import _get

    supervisor = _get(SUPERVISOR)
    if supervisor is not None:
        stats = ray.get(supervisor.stats.remote())
        say(f"calls: {stats.active} active, {stats.warm} warm CallActors, {stats.opened} opened, "
            f"{stats.closed} closed, {stats.reaped} reaped as orphans ({stats.dialogs_reaped} dialogs with no "
            f"CallActor hung up), {stats.archived} archived as call data")
        if stats.failovers or stats.failover_failures:
            say(f"failover: {stats.failovers} dead CallActors replaced mid-call (latest in "
                f"{stats.last_failover_ms:.0f} ms), {stats.failover_failures} takeovers failed (caller sent to a human)")
        for state in stats.breakers:  # shared by the node's calls (kept by the supervisor)
            say(f"{state.name} breaker: {state.position} ({state.failures} failures, opened {state.opened} times, "
                f"{state.fallback_calls} replies sent past it while open)")
    _print_shards(config)
    _print_readiness()
    return 0


def _print_readiness() -> None:
    """What the health server's /ready says (the same JSON, as a table)."""
    import ray

    from theo_ray.runtime.health import HEALTH_SERVER, readiness_rows

    try:
        actor = ray.get_actor(HEALTH_SERVER)
    except ValueError:
        return
    try:
        readiness = ray.get(actor.readiness.remote(), timeout=10)
    except Exception as exc:  # noqa: BLE001 - status prints whatever happens
        say(f"readiness: the health server does not answer ({type(exc).__name__})")
        return
    table = Table("readiness check", "state", "ms", "detail")
    for row in readiness_rows(readiness):
        table.add_row(*row)
    console.print(table)
    say("[green]ready[/green]" if readiness.ready else "[bold red]NOT READY[/bold red] (/ready answers 503)")


def _print_tts_breaker(serve) -> None:
    """The TTS circuit breaker of the replica that answers (one per replica)."""
    from theo_ray.runtime.serve_apps import APPS

    app, deployment = APPS["tts"]
    if app not in serve.status().applications:
        return
    try:
        state = serve.get_deployment_handle(deployment, app_name=app).breaker_state.remote().result(timeout_s=5)
    except Exception as exc:  # noqa: BLE001 - status must print whatever a replica does
        say(f"tts breaker: unknown ({type(exc).__name__})")
        return
    say(f"tts breaker: {state.position} ({state.failures} failures, opened {state.opened} times, "
        f"{state.fallback_calls} sentences to the fallback voice while open)")


def _print_shards(config: TheoConfig) -> None:
    """One row per SIP gateway shard: listening or not, its process, calls, restarts."""
    import ray
    from ray.util import list_named_actors

    from theo_ray.actor_names import GATEWAY_PREFIX

    namespace = ray.get_runtime_context().namespace
    names = sorted(
        e["name"] for e in list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and e["name"].startswith(GATEWAY_PREFIX)
    )
    if not names:
        return
    from theo_ray.sip.stats import refusals

    shards = Table("SIP shard", "state", "pid", "listening on", "calls", "restarts", "refused (by reason)",
                   "last crash")
    for name in names:
        try:
            actor = ray.get_actor(name, namespace=namespace)
            status = ray.get(actor.status.remote(), timeout=5)
            counted = refusals(ray.get(actor.stats.remote(), timeout=5))
        except Exception as exc:  # noqa: BLE001 - a shard that does not answer is shown as such
            shards.add_row(name, "unreachable", "-", "-", "-", "-", "-", type(exc).__name__)
            continue
        where = ", ".join(f"{a.transport}:{a.host}:{a.port}" for a in status.addresses) or "-"
        refused = ", ".join(f"{reason} {n}" for reason, n in counted.items()) or "none"
        shards.add_row(name, status.state, str(status.pid or "-"), where, str(status.active_calls),
                       str(status.restarts), refused, status.last_crash[:120] or "-")
    console.print(shards)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("up", help="prepare models, start (or join) Ray, deploy the models").set_defaults(run=cmd_up)
    sub.add_parser("down", help="stop what `theo up` started").set_defaults(run=cmd_down)
    sub.add_parser("status", help="deployments, replicas, resources").set_defaults(run=cmd_status)

"""Composition root: settings -> storage -> graph -> services -> bot -> aiohttp app.

No decisions here, only wiring. `python app.py` serves the bot; with no Microsoft credentials it
runs in dev mode (auth off, SQLite file, the Graph simulator in-process with a seeded directory).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from bot.adapter import BotAuthConfig, create_adapter
from bot.exports import RedactingAccessLogger, export_routes
from bot.handler import FreelanceBot
from bot.http import MetricsAccess, create_web_app
from bot.notifier import TeamsNotifier
from core.admin import AdminService
from core.admin_rights import AdminRights
from core.approvals import ApprovalService
from core.clock import Clock, SystemClock
from core.config import ProgramConfig
from core.engagements import EngagementService
from core.exports import ExportLinks
from core.intake_service import IntakeService
from core.lifecycle import LifecycleService
from core.log_context import configure_logging
from core.metrics import Metrics
from core.policy import PolicyService
from core.provisioning import JobHandlers
from core.redelivery import RedeliveryGuard
from graph.client import (
    GraphSettings,
    build_graph_client,
    close_graph_client,
    load_graph_models,
)
from graph.dev_seed import DEV_TENANT_ID, seed_dev_directory
from graph.directory import GraphDirectory
from graph.rate_limits import DOCUMENTED_LIMITS, GraphPacer
from graph.simulator import GraphSimulator
from jobs.backoff import Backoff
from jobs.worker import Worker, WorkerConfig
from settings import Settings, SettingsError
from storage.repositories import SqlStorage, open_storage

log = logging.getLogger("freelance_connector")

# Dev mode's simulator accepts any bearer token; this one only proves a header was sent.
DEV_GRAPH_TOKEN = "dev-mode-token"


@dataclass
class Components:
    """What a running app is made of; tests reach the parts through `app[COMPONENTS]`."""

    settings: Settings
    storage: SqlStorage
    service: EngagementService
    handlers: JobHandlers
    worker: Worker
    bot: FreelanceBot
    simulator: GraphSimulator | None
    admin: AdminService
    metrics: Metrics
    approvals: ApprovalService


COMPONENTS = web.AppKey("components", Components)


async def build_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    clock = clock or SystemClock()
    metrics = Metrics()
    storage = await open_storage(settings.database_url)

    simulator: GraphSimulator | None = None
    if not settings.dev_mode:
        graph_settings = GraphSettings(
            base_url=settings.graph_base_url or GraphSettings().base_url,
            tenant_id=settings.graph_tenant_id or None,
            client_id=settings.graph_client_id or None,
            client_secret=settings.graph_client_secret or None,
            certificate_path=settings.graph_certificate_path or None,
            use_managed_identity=settings.graph_use_managed_identity,
            static_token=settings.graph_token or None,
            request_timeout_s=settings.graph_timeout_s,
        )
    else:
        simulator = GraphSimulator(
            tenant_id=DEV_TENANT_ID,
            replication_delay_s=settings.dev_graph_replication_delay_s,
            limits=DOCUMENTED_LIMITS if settings.dev_graph_throttle else None,
        )
        seed_dev_directory(simulator)
        base_url = await simulator.start(port=settings.dev_graph_port)
        graph_settings = GraphSettings(
            base_url=base_url,
            static_token=DEV_GRAPH_TOKEN,
            request_timeout_s=settings.graph_timeout_s,
        )
    pacer = (
        GraphPacer(DOCUMENTED_LIMITS.scaled(settings.graph_rate_limit_share))
        if settings.graph_rate_limit
        else None
    )
    graph_client = build_graph_client(graph_settings, pacer=pacer, metrics=metrics)
    directory = GraphDirectory(graph_client)

    config = ProgramConfig(
        admin_ids=settings.admin_ids,
        default_approver_id=settings.default_approver or None,
        invite_redirect_url=settings.invite_redirect_url,
        max_attempts=settings.job_max_attempts,
        time_zone=settings.program_time_zone,
        end_reminder_days=settings.end_reminder_days,
        reminder_hour=settings.reminder_hour,
        max_engagement_days=settings.max_engagement_days,
        disable_guests=settings.disable_guests_on_end,
        guest_delete_after_days=settings.guest_delete_after_days,
        ended_channel_prefix=settings.ended_channel_prefix,
        invitation_nudge_days=settings.invitation_nudge_days,
        invitation_nudge_limit=settings.invitation_nudge_limit,
        approval_reminder_hours=settings.approval_reminder_hours,
        approval_reminder_limit=settings.approval_reminder_limit,
        approval_escalation_hours=settings.approval_escalation_hours,
        approval_expiry_hours=settings.approval_expiry_hours,
    )
    adapter = create_adapter(
        BotAuthConfig(
            app_id=settings.app_id,
            app_password=settings.app_password,
            app_type=settings.app_type,
            app_tenant_id=settings.app_tenant_id,
            openid_metadata_url=settings.openid_metadata_url or None,
            channel_login_url=settings.channel_login_url or None,
        ),
        allowed_tenant_ids=settings.served_tenant_ids,
    )
    rights = AdminRights(
        settings.admin_ids,
        group_id=settings.admin_group_id or None,
        directory=directory,
        clock=clock,
        ttl=timedelta(seconds=settings.admin_group_cache_s),
    )
    service = EngagementService(storage, clock, config, rights=rights)
    notifier = TeamsNotifier(
        adapter, storage, bot_app_id=settings.app_id, today=lambda: config.today(clock.now())
    )
    handlers = JobHandlers(storage, directory, notifier, clock, config)
    worker = Worker(
        storage.jobs,
        handlers,
        clock,
        WorkerConfig(
            concurrency=settings.worker_concurrency,
            poll_interval_s=settings.worker_poll_interval_s,
            lease_s=settings.job_lease_s,
            max_attempts=settings.job_max_attempts,
            backoff=Backoff(base_s=settings.job_retry_base_s, cap_s=settings.job_retry_max_s),
            replication_max_attempts=settings.job_replication_max_attempts,
            replication_backoff=Backoff(
                base_s=settings.job_replication_retry_base_s, cap_s=settings.job_retry_max_s
            ),
        ),
        metrics=metrics,
    )
    lifecycle = LifecycleService(storage, clock, config, rights=rights)
    intake = IntakeService(storage, clock, config, directory=directory)
    approvals = ApprovalService(storage, clock, config, directory=directory)
    policy = PolicyService(storage, clock, config, rights=rights, directory=directory)
    export_base_url = settings.export_base_url
    admin = AdminService(
        storage,
        clock,
        config,
        rights=rights,
        lifecycle=lifecycle,
        export_links=(
            ExportLinks(settings.export_key(), ttl=timedelta(minutes=settings.export_link_minutes))
            if export_base_url
            else None
        ),
        report_window_days=settings.report_window_days,
    )
    bot = FreelanceBot(
        service,
        clock,
        lifecycle=lifecycle,
        config=config,
        admin=admin,
        public_base_url=export_base_url,
        # Replicas share PostgreSQL; SQLite serves one instance (see core/redelivery.py).
        redelivery=RedeliveryGuard(
            storage, clock, shared=storage.engine.dialect.name == "postgresql"
        ),
        on_work_enqueued=worker.wake,
        metrics=metrics,
        intake=intake,
        policy=policy,
        send_privately=notifier.send_card,
        approvals=approvals,
    )

    async def collect_stored_figures() -> None:
        async with storage.transaction() as tx:
            by_state = await tx.figures.count_by_state()
            by_kind = await tx.figures.count_jobs()
        metrics.engagements.replace(((state.value,), count) for state, count in by_state.items())
        metrics.jobs.replace(((kind, status), count) for (kind, status), count in by_kind.items())

    metrics.registry.add_collector(collect_stored_figures)
    app = create_web_app(
        adapter,
        bot,
        extra_routes=export_routes(admin),
        metrics=metrics,
        metrics_access=MetricsAccess(settings.metrics_token, open_without_token=settings.dev_mode),
    )
    app[COMPONENTS] = Components(
        settings, storage, service, handlers, worker, bot, simulator, admin, metrics, approvals
    )
    worker_stopped: list[asyncio.Task[None]] = []
    warming: list[asyncio.Task[None]] = []

    async def warm_up_then_work() -> None:
        # Off the event loop, so turns are served meanwhile; the worker starts after it, since
        # jobs parse Graph responses and would otherwise import the models on the loop.
        await asyncio.to_thread(load_graph_models)
        if settings.worker_enabled:
            worker.start()

    async def start_worker(_app: web.Application) -> None:
        warming.append(asyncio.create_task(warm_up_then_work()))

    async def stop_claiming(_app: web.Application) -> None:
        for task in warming:
            task.cancel()  # a worker that has not started yet must not start now
        # on_shutdown runs once the listening sockets are closed and before aiohttp waits for
        # the running turns: the worker drains its jobs meanwhile, in the same time budget.
        worker_stopped.append(asyncio.create_task(worker.stop(settings.shutdown_timeout_s)))

    async def shut_down(_app: web.Application) -> None:
        if worker_stopped:
            await worker_stopped.pop()
        else:
            await worker.stop(settings.shutdown_timeout_s)
        # The worker may have sent during stop(); close the outbound session after it.
        await adapter.close()
        await close_graph_client(graph_client)
        await storage.close()
        if simulator is not None:
            await simulator.stop()

    app.on_startup.append(start_worker)
    app.on_shutdown.append(stop_claiming)
    app.on_cleanup.append(shut_down)
    return app


def dev_mode_banner(settings: Settings) -> str:
    endpoint = f"http://127.0.0.1:{settings.port}/api/messages"
    return (
        "Freelance Connector is running in DEV MODE: bot auth is off and Microsoft Graph is "
        "the in-process simulator with a seeded directory.\n"
        f"  Bot endpoint: {endpoint}\n"
        "  Chat with it in the Microsoft 365 Agents Playground (another terminal):\n"
        "    TEAMSAPPTESTER_BROWSER=none npx --yes @microsoft/m365agentsplayground@0.2.28 "
        f"-e {endpoint} -c msteams -p 56150 --dt\n"
        "  then open http://localhost:56150 in a browser. See docs/playground.md."
    )


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, json_lines=settings.json_logs, secrets=settings.secrets)
    # msrest warns on every Teams field botbuilder's models lack (e.g. an invoke's `trigger`).
    logging.getLogger("msrest.serialization").setLevel(logging.ERROR)
    if settings.dev_mode:
        print(dev_mode_banner(settings), flush=True)
    elif not settings.auth_enabled:
        log.warning("ALLOW_UNAUTHENTICATED is on: inbound requests are NOT authenticated.")
    web.run_app(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log_class=RedactingAccessLogger,
        # SIGTERM: stop accepting, let running turns finish for this long (jobs: see above).
        shutdown_timeout=settings.shutdown_timeout_s,
    )


if __name__ == "__main__":
    main()

"""``git kavi serve mcp``: TRUSTED skills as MCP tools, on the official MCP Python SDK.

The SDK's low-level :class:`mcp.server.lowlevel.Server` speaks the protocol (stdio, or
streamable HTTP on loopback); this module only answers it:

* ``tools/list`` — the :class:`~kavi.serve.catalogue.Catalogue`, rebuilt whenever the
  forge's :func:`~kavi.serve.catalogue.fingerprint` moved (checked on every request and
  every ``poll`` seconds). When the list changes — a promotion, a revocation, a policy
  change, a tampered or restored file — every connected client is sent
  ``notifications/tools/list_changed`` (on 2026-07-28 connections through
  ``subscriptions/listen``).
* ``tools/call`` — :func:`kavi.serve.calls.run_call`, i.e. ``run_skill``, in a worker
  thread, one call at a time; a confined worker process is started ahead for the next
  call (that is why a call is cheaper than ``git kavi run-skill``). A skill the runtime
  policy marks REQUIRE_APPROVAL is first shown to the client's user through elicitation
  (the exact arguments, bound by a code), and refused when the client cannot ask.

Every refusal or failure is a tool result with ``isError`` and Kavi's what/why/fix
text; nothing a client sends can end the server. stdout is the protocol: logging goes
to stderr (the SDK points fd 1 at stderr while it serves stdio).
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged

from kavi import __version__
from kavi.errors import ApprovalError, InternalError, KaviError
from kavi.serve.calls import (
    APPROVAL_TIMEOUT_S,
    ApprovalAsk,
    Caller,
    CallResult,
    approval_request,
    check_approval,
    lookup,
    no_elicitation,
    run_call,
)
from kavi.serve.catalogue import Catalogue, build_catalogue, fingerprint

log = logging.getLogger("kavi.serve")
APPROVAL_KEY = "kavi-approval"  # the input request's key on 2026-07-28 connections
MAX_PENDING = 256  # approvals asked and not yet answered (2026-07-28 connections)

INSTRUCTIONS = (
    "Kavi serves the TRUSTED skills of one git forge. Each tool is a skill a person promoted "
    "with a signed merge; its annotations come from the side-effect class that was verified "
    "and signed, and every call re-verifies the source hash, runs confined by the operating "
    "system and is recorded in the forge's ledger."
)


class KaviMCP:
    """One forge served over MCP (one instance per server process)."""

    def __init__(self, workdir: Path, *, transport: str, poll: float = 1.0) -> None:
        self.workdir = workdir
        self.transport = transport
        self.poll = poll
        self.catalogue = Catalogue()
        self._fingerprint: tuple[Any, ...] | None = None
        self._refresh_lock = anyio.Lock()
        self._run_lock = anyio.Lock()
        self._sessions: dict[int, ServerSession] = {}
        self._bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._bus)
        self._warm: Any = None
        self._pending: dict[str, tuple[ApprovalAsk, float]] = {}
        self.server: Server[Any] = Server(
            "kavi",
            version=__version__,
            title="Kavi — governed skills",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=self._listen,
        )
        self.server.middleware.append(self._remember_session)

    # -- the skill set -----------------------------------------------------------------

    async def refresh(self) -> bool:
        """Re-read the skill set if the forge moved; True if the tool list changed."""
        async with self._refresh_lock:
            changed, catalogue = await anyio.to_thread.run_sync(self._refresh_sync)
            self.catalogue = catalogue
        if changed:
            await self._announce()
        return changed

    def _refresh_sync(self) -> tuple[bool, Catalogue]:
        from kavi.forge.context import Forge

        first = self._fingerprint is None
        forge = Forge.open(self.workdir)
        try:
            if fingerprint(forge, self.catalogue.skill_paths) == self._fingerprint:
                return False, self.catalogue
            catalogue = build_catalogue(forge)
            # the paths it read may be new: fingerprint them for the next comparison
            self._fingerprint = fingerprint(forge, catalogue.skill_paths)
        finally:
            forge.close()
        return not first and catalogue.digest() != self.catalogue.digest(), catalogue

    async def _announce(self) -> None:
        names = ", ".join(t.name for t in self.catalogue.tools) or "none"
        log.info("the tool list changed (serving: %s)", names)
        for key, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception:  # a client that went away
                self._sessions.pop(key, None)
        await self._bus.publish(ToolsListChanged())

    async def watch(self) -> None:
        """Poll the forge every ``poll`` seconds (cheap: see ``fingerprint``)."""
        while True:
            await anyio.sleep(self.poll)
            try:
                await self.refresh()
            except Exception:
                log.exception("re-reading the skill set failed; serving the last one")

    async def _remember_session(
        self, ctx: ServerRequestContext[Any, Any], call_next: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        """Keep each handshake connection's session: the watch tells it when the list
        changes (2026-07-28 connections listen through ``subscriptions/listen`` instead).
        A connection's ``client_params`` is one object for its lifetime: its identity
        names the connection while the session is kept."""
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        session = ctx.session
        params = session.client_params
        if params is not None and session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._sessions.setdefault(id(params), session)
        return await call_next(ctx)

    # -- handlers ----------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        await self._refresh_quietly()
        tools = [types.Tool.model_validate(t.wire(), by_name=False) for t in self.catalogue.tools]
        return types.ListToolsResult(tools=tools)

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("re-reading the skill set failed; serving the last one")

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        caller = _caller(ctx, self.transport)
        try:
            result = await self._call(ctx, params, caller)
        except Exception as exc:  # a bug in Kavi must not end the server
            log.exception("tool call %s failed", params.name)
            result = CallResult(
                error=InternalError(
                    f"internal error: {type(exc).__name__}: {exc}",
                    why="this is a bug in Kavi",
                    remedy="see the server's log (stderr) and report it",
                )
            )
        if isinstance(result, types.InputRequiredResult):
            return result
        await self._refresh_quietly()  # a tampered file found by the call changes the list
        return _wire_result(result)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams, caller: Caller
    ) -> CallResult | types.InputRequiredResult:
        name, arguments = params.name, dict(params.arguments or {})
        approved_for: str | None = None
        found = await anyio.to_thread.run_sync(lookup, self.workdir, name)
        mode = _elicitation(ctx.session)
        if found is not None and mode is not None:
            from kavi.forge.run import validate_input
            from kavi.policy.model import Decision

            skill, (decision, reason) = found
            if decision is Decision.REQUIRE_APPROVAL:
                try:
                    validate_input(skill, arguments)  # nobody is asked to approve a bad call
                    ask = _approval(skill, reason, arguments)
                    if mode == "input-required":
                        if params.request_state is None:
                            return self._input_required(ask)
                        arguments = self._answered(ask, params)
                    else:
                        answer = await _elicit(ctx, ask)
                        arguments = check_approval(ask, answer.action, dict(answer.content or {}))
                    approved_for = ask.promotion_id
                except KaviError as exc:
                    return CallResult(error=exc)
        async with self._run_lock:
            worker, self._warm = self._warm, None
            if worker is not None and worker.proc.poll() is not None:
                worker.abort()  # it died while it waited: run_skill starts a fresh one
                worker = None
            result = await anyio.to_thread.run_sync(
                lambda: run_call(
                    self.workdir, name, arguments, caller, worker=worker, approved_for=approved_for
                )
            )
            self._prestart()
        if result.error is not None and approved_for is None:
            result.error = no_elicitation(result.error, name, arguments)
        return result

    # -- approvals on 2026-07-28 connections (no server-initiated requests) --------------

    def _input_required(self, ask: ApprovalAsk) -> types.InputRequiredResult:
        """Ask through the client's retry: the elicitation rides the result, and the
        retry must carry the answer and this one-use token (the ask stays here)."""
        now = time.monotonic()
        for token, (_, deadline) in list(self._pending.items()):
            if deadline < now:
                del self._pending[token]
        while len(self._pending) >= MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        token = secrets.token_urlsafe(24)
        self._pending[token] = (ask, now + APPROVAL_TIMEOUT_S)
        elicit = types.ElicitRequest(
            params=types.ElicitRequestFormParams(message=ask.message, requested_schema=ask.schema)
        )
        return types.InputRequiredResult(input_requests={APPROVAL_KEY: elicit}, request_state=token)

    def _answered(self, ask: ApprovalAsk, params: types.CallToolRequestParams) -> dict[str, Any]:
        found = self._pending.pop(params.request_state or "", None)
        if found is None:
            raise ApprovalError(
                f"this approval of {ask.skill} is unknown or expired",
                why="an approval is asked once per call and holds for one retry, "
                f"within {APPROVAL_TIMEOUT_S:g} seconds",
                remedy="call it again and approve what is shown then",
            )
        pending = found[0]
        if pending.code != ask.code:
            raise ApprovalError(
                f"the approval does not match this call of {ask.skill}",
                why="the retry's tool, arguments or version differ from what was shown",
                remedy="call it again and approve what is shown then",
            )
        answer = (params.input_responses or {}).get(APPROVAL_KEY)
        if not isinstance(answer, types.ElicitResult):
            raise ApprovalError(
                f"the retry of {ask.skill} carries no answer to the approval",
                why=f"expected an elicitation result under {APPROVAL_KEY!r}",
                remedy="call it again and approve what is shown then",
            )
        return check_approval(pending, answer.action, dict(answer.content or {}))

    # -- the warm worker -----------------------------------------------------------------

    def _prestart(self) -> None:
        """Start the next call's confined worker now (in this thread: its parent-death
        signal follows the thread that started it, and this one lives as long as we do)."""
        from kavi.confine.session import Worker, retry_namespaces

        retry_namespaces()  # one failure to start the jail must not unconfine every later call
        if self._warm is None:
            try:
                self._warm = Worker.start()
            except OSError:
                log.exception("cannot start a worker ahead of the next call")

    def close(self) -> None:
        if self._warm is not None:
            self._warm.abort()
            self._warm = None
        self._listen.close()

    # -- transports ----------------------------------------------------------------------

    def init_options(self) -> Any:
        return self.server.create_initialization_options(NotificationOptions(tools_changed=True))

    async def serve_stdio(self) -> None:
        from mcp.server.stdio import stdio_server

        await self.refresh()
        self._prestart()
        try:
            async with stdio_server() as (read, write), anyio.create_task_group() as tg:
                tg.start_soon(self.watch)
                await self.server.run(read, write, self.init_options())
                tg.cancel_scope.cancel()
        finally:
            self.close()

    async def serve_http(self, port: int, ready: Callable[[str], None]) -> None:
        import uvicorn

        await self.refresh()
        self._prestart()
        app = self.server.streamable_http_app(host="127.0.0.1")
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        web = uvicorn.Server(config)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.watch)
                tg.start_soon(_announce_port, web, ready)
                await web.serve()
                tg.cancel_scope.cancel()
        finally:
            self.close()


async def _announce_port(web: Any, ready: Callable[[str], None]) -> None:
    while not web.started:
        await anyio.sleep(0.02)
    for server in web.servers:
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            ready(f"http://{host}:{port}/mcp")
            return


def _caller(ctx: ServerRequestContext[Any, Any], transport: str) -> Caller:
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    return Caller(transport, info.name if info else None, info.version if info else None)


def _elicitation(session: ServerSession) -> str | None:
    """How this client's user can be asked: ``request`` (an ``elicitation/create``
    request, 2025 protocol versions), ``input-required`` (2026-07-28: the elicitation
    rides an ``InputRequiredResult`` and the client retries), or None (the client
    declared no form elicitation)."""
    caps = session.client_capabilities
    if caps is None or caps.elicitation is None:
        return None
    if caps.elicitation.form is None and caps.elicitation.url is not None:
        return None  # URL mode only: nothing to show the arguments in
    return "request" if session.can_send_request else "input-required"


async def _elicit(ctx: ServerRequestContext[Any, Any], ask: ApprovalAsk) -> types.ElicitResult:
    """Ask the client's user (an ``elicitation/create`` request); a client that fails to
    answer, or answers too late, approves nothing."""
    try:
        with anyio.fail_after(APPROVAL_TIMEOUT_S):
            return await ctx.session.elicit_form(ask.message, ask.schema, related_request_id=ctx.request_id)
    except Exception as exc:
        raise ApprovalError(
            f"the client could not ask its user to approve this run of {ask.skill}",
            why=f"{type(exc).__name__}: {str(exc)[:300]}"
            if str(exc)
            else f"no answer within {APPROVAL_TIMEOUT_S:g} seconds",
            remedy="call it again, or run it at a terminal with `git kavi run-skill … --approve`",
        ) from None


def _approval(skill: Any, reason: str, arguments: dict[str, Any]) -> ApprovalAsk:
    p = skill.promotion
    return approval_request(
        skill=p.skill_name,
        title=f"{p.skill_name} v{p.version} ({skill.proposal.side_effect_class.value})",
        tag=p.tag_name,
        sha256=p.skill_sha256,
        promotion_id=p.id,
        reason=reason,
        arguments=arguments,
    )


def _wire_result(result: CallResult) -> types.CallToolResult:
    from kavi.serve.catalogue import META

    wire: dict[str, Any] = {"content": [{"type": "text", "text": result.text()}]}
    if result.error is not None:
        wire.update(isError=True, _meta={f"{META}error": result.error.to_dict()})
    else:
        wire.update(structuredContent=result.output, _meta={f"{META}{k}": v for k, v in result.meta.items()})
    return types.CallToolResult.model_validate(wire, by_name=False)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kavi serve mcp: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(logging.INFO)

"""Commands: verify-skill, check-invariants, policy scan."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kavi.cli import output
from kavi.cli.cmd_forge import FormatOpt, WaitOpt, holding, open_forge
from kavi.cli.output import Format

BuildOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--build", help="Build id or prefix (default: the latest successful build)."),
]


def register(app: typer.Typer) -> None:
    @app.command("verify-skill")
    def verify_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name.")],
        build: BuildOpt = None,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Run every verify gate on the exact build commit.

        Gates: scope, policy scan, invariants, ruff, mypy --strict, pytest (under the
        runtime guard, only after the policy scan and invariants passed).

        Example: git kavi verify-skill write_note
        """
        output.use(fmt)
        from kavi.forge.verify import verify_skill

        forge = open_forge()
        with holding(forge, f"verify-skill {proposal}", wait):
            outcome = verify_skill(forge, proposal, build_ref=build, progress=output.progress)
        v = outcome.verification
        lines = [f"Verification {v.id[:8]} of {outcome.proposal.name} @ {v.commit_id[:12]}: {v.status.value}"]
        for name, gate in v.gates.items():
            mark = "-" if gate.skipped else ("✓" if gate.ok else "✗")
            lines.append(f"  {mark} {name:<11} {gate.duration_s:6.2f}s  {gate.tool_version}")
            for finding in gate.findings[:20]:
                lines.append(f"      {finding}")
            if len(gate.findings) > 20:
                lines.append(f"      … {len(gate.findings) - 20} more in the report")
        lines.append(f"  report: {outcome.report.path}")
        from kavi.cli.hints import kavi as hint

        short = outcome.proposal.id[:8]
        if v.status.value == "PASSED":
            lines.append(hint("Next", "promote-skill", short))
        else:
            lines.append(hint("Research", "research-skill", v.id[:8]))
            lines.append(hint("Retry", "build-skill", short, "--retry"))
        payload: dict[str, Any] = {
            "verification_id": v.id,
            "proposal_id": v.proposal_id,
            "build_id": v.build_id,
            "status": v.status.value,
            "commit": v.commit_id,
            "tree": v.tree_id,
            "gates": {
                name: {
                    "ok": g.ok,
                    "skipped": g.skipped,
                    "findings": g.findings,
                    "duration_s": g.duration_s,
                    "tool_version": g.tool_version,
                }
                for name, g in v.gates.items()
            },
            "report": outcome.report.path,
            "proposal_status": outcome.proposal.status.value,
        }
        output.emit(payload, "\n".join(lines))
        if v.status.value != "PASSED":
            raise typer.Exit(1)

    @app.command("check-invariants")
    def invariants_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name.")],
        build: BuildOpt = None,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Check structure, scope and extended safety of a build, without running anything.

        Example: git kavi check-invariants write_note
        """
        output.use(fmt)
        from kavi.forge.invariant_check import check_build

        forge = open_forge()
        result = check_build(forge, proposal, build_ref=build)
        lines = [
            f"Invariants of {result['name']} @ {result['commit'][:12]}: {'ok' if result['ok'] else 'FAILED'}"
        ]
        lines += [f"  ✗ {f}" for f in result["findings"]]
        output.emit(result, "\n".join(lines))
        if not result["ok"]:
            raise typer.Exit(1)

    policy_app = typer.Typer(help="Governance policy tools.", no_args_is_help=True)
    app.add_typer(policy_app, name="policy")

    @policy_app.command("scan")
    def scan_cmd(
        paths: Annotated[list[Path], typer.Argument(help="Files or directories (*.py) to scan.")],
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Statically scan Python files with the forge's policy (or the default policy).

        Exit 1 when anything is found.

        Example: git kavi policy scan skills/ tests/test_skill_write_note.py
        """
        output.use(fmt)
        from kavi.forge.invariant_check import scan_policy_for_cwd
        from kavi.policy.scanner import scan_paths

        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            from kavi.errors import UsageError

            raise UsageError(f"no such file or directory: {', '.join(missing)}")
        policy, source = scan_policy_for_cwd()
        findings = scan_paths(paths, policy.scanner)
        text = "\n".join(str(f) for f in findings)
        text += f"\n{len(findings)} finding(s) ({source})" if findings else f"clean ({source})"
        output.emit(
            {"findings": [f.to_dict() for f in findings], "count": len(findings), "policy": source},
            text.strip(),
        )
        if findings:
            raise typer.Exit(1)

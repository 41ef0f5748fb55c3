"""Commands: trust show, trust pin, trust add, trust remove."""

from typing import Annotated, Optional

import typer

from kavi.cli import output
from kavi.cli.cmd_forge import FormatOpt, WaitOpt, holding
from kavi.cli.output import Format


def register(app: typer.Typer) -> None:
    trust_app = typer.Typer(
        help="The forge's trusted keys and this clone's pinned trust root.", no_args_is_help=True
    )
    app.add_typer(trust_app, name="trust")

    @trust_app.command("show")
    def show_cmd(fmt: FormatOpt = Format.text) -> None:
        """Show the pinned trust root (with fingerprints), the keys trusted now, and whether
        every commit of the target branch is sanctioned from the root.

        Example: git kavi trust show
        """
        output.use(fmt)
        from kavi.forge.context import Forge
        from kavi.forge.trust_cmds import render_show, show

        data = show(Forge.open())
        output.emit(data, render_show(data))
        if data["problem"] is not None:
            raise typer.Exit(1)

    @trust_app.command("pin")
    def pin_cmd(
        root: Annotated[
            str, typer.Argument(help="allowed_signers FILE of the forge's root, or a key fingerprint.")
        ],
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Pin this clone's trust root before it is used (instead of trusting it on first use).

        Example: git kavi trust pin ~/forge-root.allowed_signers
                 git kavi trust pin SHA256:3kCv…
        """
        output.use(fmt)
        from kavi.forge.context import Forge
        from kavi.forge.trust_cmds import pin

        forge = Forge.open()
        with holding(forge, "trust pin", wait):
            data = pin(forge, root)
        status = (
            "every commit sanctioned"
            if data["sanctioned"]
            else "history NOT sanctioned (git kavi trust show)"
        )
        forge_id = (data["forge_id"] or "(no root in this history yet)")[:12]
        verb = "pinned" if data["changed"] else "already pinned"
        output.emit(data, f"{verb}: forge {forge_id}; {status}")

    @trust_app.command("add")
    def add_cmd(
        key: Annotated[
            Optional[str],  # noqa: UP045
            typer.Argument(help="Public key file (KEY.pub) or the key itself (default: your signing key)."),
        ] = None,
        principal: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(
                "--principal", help="Who the key belongs to (default: your user.email for your own key)."
            ),
        ] = None,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Trust a key: a signed commit adding it to .kavi/allowed_signers on the target branch.

        The first key of a keyless forge must be your own signing key: it becomes the trust root.

        Example: git kavi trust add
                 git kavi trust add bob.pub --principal bob@example.com
        """
        output.use(fmt)
        from kavi.cli.cmd_forge import open_forge
        from kavi.forge.trust_cmds import add

        forge = open_forge()
        with holding(forge, "trust add", wait):
            data = add(forge, key, principal)
        text = (
            f"trusted {data['principal']} ({data['added']}) "
            f"in commit {data['commit'][:12]} on {data['branch']}"
        )
        if data["root"]:
            text += f"\n  this is the forge's trust root: forge {data['forge_id']}"
        text += f"\nNext: git push origin {data['branch']}"
        output.emit(data, text)

    @trust_app.command("remove")
    def remove_cmd(
        key: Annotated[str, typer.Argument(help="Fingerprint (SHA256:…) or public key of the key to drop.")],
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Stop trusting a key: a signed commit removing it from .kavi/allowed_signers.

        Example: git kavi trust remove SHA256:3kCv…
        """
        output.use(fmt)
        from kavi.cli.cmd_forge import open_forge
        from kavi.forge.trust_cmds import remove

        forge = open_forge()
        with holding(forge, "trust remove", wait):
            data = remove(forge, key)
        output.emit(
            data,
            f"stopped trusting {data['removed']} in commit {data['commit'][:12]} on {data['branch']}\n"
            f"Next: git push origin {data['branch']}",
        )

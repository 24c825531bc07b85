"""The `onnx-run` group: every failure is one `error: ...` line on stderr and exit 2 (click's usage
errors included); `onnx-run --debug ...` prints the traceback instead, still exiting 2."""
import sys
import traceback

import click


def _debug_requested(args):
    """--debug given before the subcommand name."""
    for a in args:
        if not a.startswith("-"):
            return False
        if a == "--debug":
            return True
    return False


def _one_line(e):
    text = e.format_message() if isinstance(e, click.ClickException) else str(e)
    text = " ".join(text.split()) or type(e).__name__
    return text


class Group(click.Group):
    """click.Group whose main() turns exceptions into the documented exit codes."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = _debug_requested(args)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001  the CLI's contract: one line, exit 2
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"error: {_one_line(e)}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)

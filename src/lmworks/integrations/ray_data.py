"""Batch scoring on Ray Data: ``lmworks predict MODEL_DIR DATA --engine ray --output DIR``.

The pattern is the one Ray's batch-inference guide recommends: the data is read as a
Ray Dataset (CSV, JSONL or Parquet: one file, a folder or a glob of part files), and
``map_batches`` runs a callable class on a fixed pool of actors, so each actor loads
the model once and then classifies batch after batch with its share of the CPUs.
Predictions are written as Parquet part files by the workers themselves: the driver
only plans and waits, and holds nothing proportional to the data.

Failures are Ray's to handle: an actor that dies (a killed process, a lost node) is
restarted and its unfinished batches are run again (Ray Data's defaults for actor
pools, ``max_restarts=-1`` and ``max_task_retries=-1``). A batch's output is written
only once the batch is complete, so a retry neither loses nor duplicates rows. The
output goes to a hidden sibling folder that is renamed into place at the end: a
failed job leaves no half-written output under the requested name.

Without ``address`` a local Ray instance is started for the call (as many CPUs as
this process may use) and shut down afterwards; with ``address="auto"`` or
``HOST:PORT`` the job joins a running cluster, whose workers need lmworks installed
and the model directory and data reachable at the same paths (a shared file system
or object store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_dir
from ..errors import ConfigError, DataError, LmworksError
from ..inference.files import PREDICTION_COLUMN, output_frame
from ..inference.inputs import ModelInputs
from ..readers import data_files, header, sniff_delimiter
from ..runtime import logging_state, usable_cpus

LOGGER = logging.getLogger("lmworks")

#: The column Ray Data adds with each row's source file (``include_paths``), dropped from the output.
PATH_COLUMN = "__lmworks_path__"

@dataclass
class RayConfig:
    """Where and how wide the Ray job runs.

    Attributes
    ----------
    address:
        ``None``: a local Ray instance for this call; ``"auto"`` or ``"HOST:PORT"``: a running cluster.
    actors:
        Model copies (actors), each loading the model once.
    threads_per_actor:
        Inference threads (and CPUs reserved) per actor; default: this machine's usable
        CPUs divided among the actors.
    batch_size:
        Rows per ``map_batches`` call.
    preserve_order:
        Write rows in input order (Ray Data's ``preserve_order``; some throughput lost to
        head-of-line waiting). Otherwise join outputs back on an id column.
    progress:
        Ray Data's progress bars.
    """

    address: str | None = None
    actors: int = 2
    threads_per_actor: int | None = None
    batch_size: int = 4096
    preserve_order: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ConfigError(f"actors must be >= 1, got {self.actors}")
        if self.threads_per_actor is not None and self.threads_per_actor < 1:
            raise ConfigError(f"threads_per_actor must be >= 1, got {self.threads_per_actor}")

    def threads(self) -> int:
        """Threads per actor."""
        return self.threads_per_actor or max(1, usable_cpus() // self.actors)


class PredictorActor:
    """One model copy: loaded once per actor, then called on batch after batch (a pandas DataFrame)."""

    def __init__(self, model_dir: str, inputs: ModelInputs, threads: int, source: str, label_column: str,
                 label_separator: str) -> None:
        from ..classifier import TextClassifier

        self.classifier = TextClassifier.load(model_dir, num_threads=threads)
        self.inputs, self.source = inputs, source
        self.label_column, self.label_separator = label_column, label_separator

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """``batch`` plus ``label`` and ``prob_<class>`` columns."""
        clf = self.classifier
        paths = batch.pop(PATH_COLUMN) if PATH_COLUMN in batch else None
        frame = batch.reset_index(drop=True)
        try:
            proba = clf.predict_proba(self.inputs.from_frame(self.source, frame))
        except DataError as err:
            # Not chained on purpose: Ray reports a task's innermost cause to the driver, which would
            # be the batch-relative error this one replaces; this message already carries all of it.
            raise DataError(_locate(err, frame, paths)) from None
        return output_frame(batch, clf.labels_, clf.decide(proba), proba, self.label_column,
                            clf.config.multi_label, self.label_separator, "parquet")


def _locate(err: DataError, frame: pd.DataFrame, paths: pd.Series | None) -> str:
    """The error with the file it came from: Ray batches do not know their rows' line numbers.

    The row is identified by its first columns' values (an id column, typically).
    """
    location, _, detail = str(err).partition(": ")
    row = int(location.rsplit(" ", 1)[-1]) - 1 if location.rsplit(" ", 1)[-1].isdigit() else None
    if row is None or not 0 <= row < len(frame):
        return str(err)
    source = str(paths.iloc[row]) if paths is not None else "input"
    shown = ", ".join(f"{c}={frame.iloc[row][c]!r:.40}" for c in list(frame.columns)[:2])
    return f"{source}: the row with {shown}: {detail}"


def predict_ray(model_dir: str | Path, data: str | Path, output: str | Path, *, inputs: ModelInputs,
                config: RayConfig | None = None, encoding: str = "utf-8", delimiter: str | None = None,
                label_separator: str = "|") -> int:
    """Score every row of ``data`` on Ray; Parquet part files under the folder ``output``; returns the row count."""
    config = config or RayConfig()
    files, fmt = data_files(data)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output}: --engine ray writes a folder of Parquet part files; this is a file")
    from ..model_dir import read_meta

    read_meta(model_dir)  # a broken model directory fails here, not in every actor
    ray = _require_ray()
    started_here = not ray.is_initialized()
    with logging_state(keep=("ray", "ray.data")):  # Ray configures its own loggers: put them back after
        if started_here:
            _init(ray, config)
        return _score(ray, model_dir, data, output, files, fmt, inputs, config, encoding, delimiter,
                      label_separator, started_here)


def _score(ray: Any, model_dir: str | Path, data: str | Path, output: Path, files: list[str], fmt: str,
           inputs: ModelInputs, config: RayConfig, encoding: str, delimiter: str | None, label_separator: str,
           started_here: bool) -> int:
    try:
        dataset = _read(ray, files, fmt, encoding, delimiter)
        threads = config.threads()
        scored = dataset.map_batches(
            PredictorActor, batch_format="pandas", batch_size=config.batch_size, concurrency=config.actors,
            num_cpus=threads, fn_constructor_kwargs={
                "model_dir": str(Path(model_dir).resolve()), "inputs": inputs, "threads": threads,
                "source": files[0], "label_column": PREDICTION_COLUMN, "label_separator": label_separator})
        with atomic_dir(output) as staging:  # the folder appears only once every part is written
            scored.write_parquet(str(staging))
            rows = _count_rows(staging)
            if rows == 0:
                raise DataError(f"{data}: no rows")
        return rows
    except Exception as err:
        raise _user_error(err) from err
    finally:
        if started_here:
            ray.shutdown()


def _require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ConfigError("--engine ray needs Ray Data: pip install 'lmworks[ray]'") from err
    return ray


def _init(ray: Any, config: RayConfig) -> None:
    import ray.data

    if config.address is None:
        # One logical CPU beyond the actors' for the read and write tasks: were the actors to
        # hold every CPU, reading would wait for a CPU forever (Ray schedules by these counts).
        ray.init(num_cpus=max(usable_cpus(), config.actors * config.threads()) + 1, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = config.progress
    if not config.progress:  # without bars Ray Data logs its progress as INFO lines instead
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    context.execution_options.preserve_order = config.preserve_order


def _read(ray: Any, files: list[str], fmt: str, encoding: str, delimiter: str | None) -> Any:
    """The files as a Ray Dataset, with each row's source file in :data:`PATH_COLUMN` (for error messages)."""
    sep = delimiter or (sniff_delimiter(files[0], encoding) if fmt == "csv" else ",")
    columns = header(files[0], encoding=encoding, delimiter=sep)
    # Ray names the source-file column "path": only when the data has no column of that name.
    paths = "path" not in columns
    # file_extensions=None: the files are already chosen by readers.data_files (.ndjson, .pq included)
    if fmt == "parquet":
        dataset = ray.data.read_parquet(files, include_paths=paths, file_extensions=None)
    elif fmt == "jsonl":
        dataset = ray.data.read_json(files, lines=True, include_paths=paths, file_extensions=None)
    else:
        import pyarrow as pa
        from pyarrow import csv

        dataset = ray.data.read_csv(
            files, read_options=csv.ReadOptions(encoding=encoding), parse_options=csv.ParseOptions(delimiter=sep),
            # every cell a string, as lmworks' own CSV reader reads them ("01" stays "01")
            convert_options=csv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()),
                                               strings_can_be_null=False),
            include_paths=paths)
    return dataset.rename_columns({"path": PATH_COLUMN}) if paths else dataset


def _count_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.glob("*.parquet")))  # own output


def _user_error(err: Exception) -> Exception:
    """The lmworks error inside Ray's wrappers (a bad row names its file and field), else ``err`` itself.

    Ray re-raises a worker's exception wrapped (``RayTaskError`` keeps the original as
    ``cause``; Ray Data's ``UserCodeException`` keeps it only in its text, the remote
    traceback): the original is taken from the first place it is found.
    """
    from .. import errors

    seen: Any = err
    for _ in range(10):
        if seen is None:
            break
        cause = getattr(seen, "cause", None)
        if isinstance(seen, LmworksError) and not isinstance(cause, BaseException):
            return type(seen)(str(seen))
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    for line in str(err).splitlines():
        name, _, message = line.strip().partition(": ")
        kind = getattr(errors, name.rsplit(".", 1)[-1], None) if name.startswith("lmworks.errors.") else None
        if isinstance(kind, type) and issubclass(kind, LmworksError):
            return kind(message)
    return err

"""Inference engines for one ONNX file: ONNX Runtime fp32 (portable, the reference) and OpenVINO bf16
(about twice as fast on CPUs with native bf16: AVX512-BF16 or AMX).

A faster precision is used only when its fidelity was measured at export (minimum cosine to PyTorch fp32
on varied texts, recorded in the manifest) and passed MIN_COSINE; otherwise the reference engine runs.
"""
from __future__ import annotations

import functools
import os
import threading

import numpy as np

from . import prepared
from .bundle import Bundle, BundleError

MIN_COSINE = 0.999
REFERENCE = "onnxruntime-fp32"
ENGINES = ("onnxruntime-fp32", "openvino-bf16")
INPUTS = {"input_ids", "attention_mask", "token_type_ids"}


@functools.cache  # read once per process: the flags never change
def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return []


def cpu_has_native_bf16() -> bool:
    """OpenVINO computes in bf16 here (so the export can measure bf16's fidelity), fast or not."""
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_amx() -> bool:
    """bf16 is faster than fp32 here. Measured with all-mpnet-base-v2, 2 threads, 160 Debian descriptions: with
    AMX, OpenVINO bf16 ran about twice as fast as ONNX Runtime fp32 (bench/RESULTS-backends-openvino-bf16.md);
    on a Xeon with AVX512-BF16 but no AMX, at 0.57-0.72x of it. So 'auto' takes bf16 only with AMX."""
    return "amx_bf16" in _cpu_flags()


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def precision_accepted(bundle: Bundle, engine: str) -> bool:
    check = bundle.manifest.get("precisions", {}).get(engine, {})
    return bool(check.get("accepted")) and float(check.get("min_cosine", 0)) >= MIN_COSINE


def choose(bundle: Bundle, wanted: str | None) -> tuple[str, str]:
    """(engine to run, why). 'auto' (or None) picks the fastest engine that is faithful here."""
    wanted = wanted or "auto"
    if wanted not in ("auto", *ENGINES):
        raise BundleError(f"unknown engine {wanted!r}; use one of auto, {', '.join(ENGINES)}")
    if wanted == REFERENCE:
        return REFERENCE, "chosen by setting"
    fast = "openvino-bf16"
    # Cheapest checks first: importing openvino costs every backend start-up on hosts that never use it.
    measured = bundle.manifest.get("precisions", {}).get(fast)
    if not precision_accepted(bundle, fast):
        if not measured or "min_cosine" not in measured:
            reason = "bf16 fidelity not measured at export"
        elif float(measured["min_cosine"]) < MIN_COSINE:
            reason = f"bf16 fidelity {measured['min_cosine']:.5f} < {MIN_COSINE}"
        else:  # faithful, but refused at export for another reason (e.g. no native bf16 there)
            reason = f"bf16 refused at export: {measured.get('why') or 'not accepted'}"
    elif wanted == "auto" and not cpu_has_native_bf16():
        reason = "this CPU has no native bf16 (AVX512-BF16/AMX)"
    elif wanted == "auto" and not cpu_has_amx():
        reason = "this CPU has bf16 without AMX, where bf16 runs slower than fp32"
    elif not openvino_available():
        reason = "openvino is not installed"
    else:
        # Named by the setting, it runs without native bf16 too (OpenVINO then computes in fp32): say so.
        native = wanted == "auto" or cpu_has_native_bf16()
        how = "native bf16" if native else "chosen by setting on a CPU without native bf16"
        return fast, "faithful (min cosine %.5f), %s" % (measured["min_cosine"], how)
    if wanted == fast:
        raise BundleError(f"engine {fast} refused: {reason}")
    return REFERENCE, reason


class OnnxRuntimeEngine:
    name = "onnxruntime-fp32"
    reason = "built by the caller"  # load() records why it chose this engine

    def __init__(self, bundle: Bundle, threads: int, cache_dir: str | None = None):
        """cache_dir: where the prepared (shared) model lives; None loads a private copy, as the export does."""
        import onnxruntime as ort

        self.session = None
        if cache_dir is None:
            self.weights = "private copy (no cache folder: not inside a PostgreSQL server)"
        else:
            folder = prepared.folder_for(cache_dir, ort.__version__)
            try:
                self.session = prepared.open_shared(ort, bundle.onnx_path, folder, threads)
                self.weights = f"shared, memory-mapped from {folder}"
            except prepared.Unshared as exc:
                self.weights = f"private copy: {exc}"
        if self.session is None:
            options = prepared.session_options(ort, threads)
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                self.session = ort.InferenceSession(bundle.onnx_path, options, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise BundleError(f"model bundle {bundle.path}: ONNX Runtime cannot load model.onnx ({exc}); "
                                  f"re-export it with `pgbert export {bundle.model_id}`") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.width = self.session.get_outputs()[0].shape[-1]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {name: feeds[name] for name in self.input_names})[0]


class OpenVinoEngine:
    name = "openvino-bf16"
    reason = "built by the caller"

    def __init__(self, bundle: Bundle, threads: int, cache_dir: str | None = None):
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads}
        if cache_dir:
            config["CACHE_DIR"] = cache_dir  # compiled model cache: a second backend starts in a fraction
        try:
            self.compiled = ov.Core().compile_model(bundle.onnx_path, "CPU", config)
        except Exception as exc:
            raise BundleError(f"model bundle {bundle.path}: OpenVINO cannot compile model.onnx ({exc})") from None
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()  # an infer request runs one inference at a time (the model host has threads)
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output = self.compiled.outputs[0]
        # Measured with all-mpnet-base-v2 on a Xeon with AMX (OpenVINO 2026.4): a second process maps the
        # cached blob and still holds 800 MB of its own (the weights repacked for bf16); the cache only cuts
        # the load from 2.3 s to 0.7 s. So one copy per process that runs the model: the model host alone,
        # or every backend with model_host off (pgbert.status() says which).
        self.weights = ("one copy per process that runs the model (OpenVINO shares no weights between "
                        "processes; its compiled-model cache only speeds up loading)" if cache_dir
                        else "private copy (no cache folder: not inside a PostgreSQL server)")
        shape = self.output.get_partial_shape()[-1]
        self.width = shape.get_length() if shape.is_static else None

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with self.lock:  # copied inside: the output may be the request's own buffer, which the next call reuses
            return np.array(self.request.infer({name: feeds[name] for name in self.input_names})[self.output])


def private_cache_dir(bundle: Bundle) -> str | None:
    """A model cache only the server's user can write (OpenVINO's compiled model, ONNX Runtime's prepared
    one): inside the data directory, which is a backend's working directory. Nothing a database user sets
    can point it elsewhere. One folder per model file (named by its sha256), so an operator can see what is
    stale; any of it may be deleted (backends that mapped a deleted file keep their pages)."""
    base = os.getcwd()
    if not os.path.exists(os.path.join(base, "PG_VERSION")):
        return None  # not inside a PostgreSQL backend: no cache
    digest = bundle.files.get("model.onnx", {}).get("sha256", "unknown")[:16]
    path = os.path.join(base, "pgbert_cache", digest)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.makedirs(path, mode=0o700, exist_ok=True)
        if os.stat(os.path.dirname(path)).st_uid != os.geteuid() or os.stat(path).st_uid != os.geteuid():
            return None
    except OSError:
        return None
    return path


def shared_weights_ready(bundle: Bundle) -> bool:
    """True when a load here maps the prepared model (for the memory guard: it then needs little memory)."""
    cache = private_cache_dir(bundle)
    if cache is None:
        return False
    import onnxruntime

    return prepared.ready(prepared.folder_for(cache, onnxruntime.__version__))


def load(bundle: Bundle, threads: int, wanted: str | None, shared_weights: bool = True):
    engine, reason = choose(bundle, wanted)
    if engine == "openvino-bf16":
        runner = OpenVinoEngine(bundle, threads, private_cache_dir(bundle))
    else:
        runner = OnnxRuntimeEngine(bundle, threads, private_cache_dir(bundle) if shared_weights else None)
        if not shared_weights:
            runner.weights = "private copy (shared_weights is off in pgbert.settings)"
    runner.reason = reason
    return check(runner, bundle)


def check(runner, bundle: Bundle):
    """The model's inputs and output width must be the ones pgbert feeds and the manifest promises."""
    unknown = set(runner.input_names) - INPUTS
    if unknown:
        raise BundleError(f"model bundle {bundle.path}: model.onnx wants unsupported inputs {sorted(unknown)}")
    if isinstance(runner.width, int) and runner.width != bundle.dimension:
        raise BundleError(f"model bundle {bundle.path}: model.onnx gives {runner.width}-d vectors but the "
                          f"manifest says {bundle.dimension}; re-export the model")
    return runner

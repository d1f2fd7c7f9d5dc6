"""
# Checkpoints: what inference needs, what resuming needs, and nothing unsafe

A checkpoint is one `torch.save` file holding a plain dict (the *payload*); for each key,
what it is for (inference, resume or both) and what it holds:

- `format`, `format_version` (both): `"u2net_mini checkpoint"`, `FORMAT_VERSION`; set by
  `save_checkpoint`
- `model_config` (inference): the model's `.config`, e.g. `{"name": "xs", "out_ch": 4, "in_ch": 3}`
- `state_dict` (inference): the weights (`model.state_dict()`, never a DDP or compiled
  wrapper's)
- `lesions` (inference): output channel names in order, e.g. `("MA", "HE", "EX", "SE")`
- `input_size` (inference): side of the square network input in pixels, e.g. 512
- `mean`, `std` (inference): per-channel normalization of the training set, lists of floats
- `preprocessing` (inference): the options of the preprocessing, e.g. `{"clahe": True}`
- `epoch`, `optimizer`, `scheduler`, `rng`, `history` (resume): see `RESUME_KEYS`

The paper publishes no checkpoint format; this one is ours. Two rules shape it:

- **Safe to load.** `load_checkpoint` uses `torch.load(..., weights_only=True)`, which
  runs no code from the file but reads only tensors, numbers, strings, lists, tuples and
  dicts. `save_checkpoint` therefore refuses anything else *before* writing (a NumPy
  array or scalar, a function), naming where in the payload it sits; `rng_state()`
  returns the random states of Python, NumPy and torch in those plain types.
- **Never half-written, never half-loaded.** Saving goes through `atomic_write` (temporary
  file, fsync, rename): a crash leaves the previous checkpoint intact. Loading weights
  goes through `load_weights`, which refuses a state_dict that does not match the model
  and names every missing key, unexpected key and shape mismatch, instead of loading
  the part that fits.
"""

import pickle
import random
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from data_prep.atomic import atomic_write

from .lesions import lesion_indices

FORMAT = "u2net_mini checkpoint"
FORMAT_VERSION = 1
INFERENCE_KEYS = ("model_config", "state_dict", "lesions", "input_size", "mean", "std",
                  "preprocessing")
# epoch: the last finished epoch (resume starts at epoch + 1); optimizer, scheduler: their
# state_dicts; rng: rng_state(); history: one dict of metrics per finished epoch.
RESUME_KEYS = ("epoch", "optimizer", "scheduler", "rng", "history")

# Exactly the types torch.load(weights_only=True) reads back (subclasses such as
# numpy.float64, a float, are not among them).
_PLAIN_TYPES = (dict, OrderedDict, list, tuple, str, bytes, int, float, bool, complex, type(None),
                torch.Size, torch.dtype, torch.device)


def _check_loadable(value, where="payload"):
    """ValueError unless `value` is made only of types that weights_only loading reads."""
    if isinstance(value, torch.Tensor):
        return
    if type(value) not in _PLAIN_TYPES:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise ValueError(
            f"{where} is a {kind}; a checkpoint may hold only tensors, numbers, strings, lists, "
            f"tuples and dicts, so that it loads with torch.load(weights_only=True) "
            f"(convert NumPy values with .tolist() or float())"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_loadable(key, f"a key of {where}")
            _check_loadable(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_loadable(item, f"{where}[{index}]")


def _check_payload(payload, source):
    """ValueError unless `payload` holds the inference keys with sensible values."""
    if not isinstance(payload, Mapping):
        raise ValueError(f"{source}: a checkpoint payload must be a dict, got "
                         f"{type(payload).__name__}")
    missing = [key for key in INFERENCE_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{source}: the checkpoint lacks {missing} (needed for inference)")
    config, state_dict = payload["model_config"], payload["state_dict"]
    if not isinstance(config, Mapping):
        raise ValueError(f"{source}: model_config must be a dict, got {type(config).__name__}")
    if not isinstance(state_dict, Mapping) or not state_dict or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor)
        for key, value in state_dict.items()
    ):
        raise ValueError(f"{source}: state_dict must be a non-empty dict of name -> tensor")
    lesions = tuple(payload["lesions"])
    lesion_indices(lesions)  # ValueError for unknown or repeated names
    if "out_ch" in config and config["out_ch"] != len(lesions):
        raise ValueError(
            f"{source}: model_config out_ch = {config['out_ch']} but {len(lesions)} lesions "
            f"{lesions}"
        )
    size = payload["input_size"]
    if type(size) is not int or size <= 0:
        raise ValueError(f"{source}: input_size must be a positive int, got {size!r}")
    n_channels = config.get("in_ch", 3)
    for key in ("mean", "std"):
        values = payload[key]
        if (not isinstance(values, (list, tuple)) or len(values) != n_channels
                or not all(type(v) in (float, int) and np.isfinite(v) for v in values)):
            raise ValueError(f"{source}: {key} must be a list of {n_channels} finite floats, got "
                             f"{values!r}")
    if any(v <= 0 for v in payload["std"]):
        raise ValueError(f"{source}: std must be positive, got {payload['std']!r}")
    if not isinstance(payload["preprocessing"], Mapping):
        raise ValueError(f"{source}: preprocessing must be a dict, got "
                         f"{payload['preprocessing']!r}")


def save_checkpoint(path, payload):
    """Write `payload` (see the module's table) to `path` atomically; returns the Path.

    Adds `format` and `format_version`. Raises ValueError, writing nothing, when an
    inference key is missing or malformed, or a value would not load with weights_only.
    """
    path = Path(path)
    payload = dict(payload)
    for key, value in (("format", FORMAT), ("format_version", FORMAT_VERSION)):
        if payload.setdefault(key, value) != value:
            raise ValueError(f"payload[{key!r}] must be {value!r} or absent, got {payload[key]!r}")
    payload["lesions"] = tuple(payload.get("lesions", ()))
    _check_payload(payload, f"saving {path}")
    _check_loadable(payload)
    with atomic_write(path) as file:
        torch.save(payload, file)
    return path


def load_checkpoint(path, expect=None, resume=False, map_location="cpu"):
    """Read a checkpoint written by `save_checkpoint`, without running code from the file.

    `expect`: optional {key: value} the checkpoint must hold, e.g.
    `{"lesions": ("MA", "HE"), "model_config": model.config}`; `resume=True` also requires
    `RESUME_KEYS`. Raises FileNotFoundError for a missing file and ValueError for a file
    that is not our checkpoint, has another format version, or differs from `expect`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a u2net_mini checkpoint: "
                         f"{_load_failure(error)}") from error
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, Mapping) and payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()
        ):
            hint = " (it looks like a bare state_dict; write checkpoints with save_checkpoint)"
        raise ValueError(f"{path} is not a u2net_mini checkpoint: no format {FORMAT!r}{hint}")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {payload.get('format_version')!r}, "
            f"this code reads version {FORMAT_VERSION}"
        )
    _check_payload(payload, str(path))
    payload = dict(payload)
    payload["lesions"] = tuple(payload["lesions"])
    if resume:
        missing = [key for key in RESUME_KEYS if key not in payload]
        if missing:
            raise ValueError(f"{path} cannot resume training: it lacks {missing}")
    for key, value in (expect or {}).items():
        if key not in payload:
            raise ValueError(f"{path} has no {key!r}; expected {value!r}")
        found = payload[key]
        if isinstance(value, (list, tuple)) and isinstance(found, (list, tuple)):
            value, found = tuple(value), tuple(found)
        if found != value:
            raise ValueError(f"{path} holds {key} = {found!r}, expected {value!r}")
    return payload


def _load_failure(error):
    """Why torch.load(weights_only=True) failed, in words, without torch's advice to load
    with weights_only=False (which would run whatever code the file carries)."""
    # torch names a blocked Python object ("GLOBAL") when the file asks to build one
    if isinstance(error, pickle.UnpicklingError) and "GLOBAL" in str(error):
        return ("it holds Python objects other than tensors, numbers, strings, lists and dicts; "
                "this project never writes such files and does not load them, because loading "
                "one can run code from the file")
    # torch's own text would advise weights_only=False
    if isinstance(error, pickle.UnpicklingError):
        return "it is truncated, damaged or not a torch file (its pickled data cannot be read)"
    if isinstance(error, (OSError, EOFError, RuntimeError)):
        return (f"it is truncated, damaged or not a torch file "
                f"({type(error).__name__}: {str(error).splitlines()[0]})")
    return f"torch.load failed with {type(error).__name__}"


def load_weights(model, state_dict):
    """Load `state_dict` into `model` completely or not at all.

    ValueError naming every missing key, unexpected key and shape mismatch (the model is
    left unchanged); never the silent partial load of `strict=False`.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    mismatched = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)}, model {tuple(own[key].shape)}"
        for key in own
        if key in state_dict and tuple(state_dict[key].shape) != tuple(own[key].shape)
    ]
    if missing or unexpected or mismatched:
        lines = [f"the checkpoint's state_dict does not match the {type(model).__name__} model:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} "
                                                "more)" if len(items) > 8 else "")
                lines.append(f"  {len(items)} {title}: {shown}")
        for prefix, wrapper in (("module.", "DistributedDataParallel"),
                                ("_orig_mod.", "torch.compile")):
            if unexpected and all(key.startswith(prefix) for key in unexpected):
                lines.append(f"  (keys start with {prefix!r}: saved from a {wrapper} wrapper; "
                             f"save the inner model's state_dict)")
        raise ValueError("\n".join(lines))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ValueError("the checkpoint's state_dict does not load into the model: "
                         f"{error}") from error
    return model


def load_model(path, device="cpu"):
    """(U²-Net in eval mode on `device`, payload) from the checkpoint file `path`.

    The one place a checkpoint becomes a model: the architecture from `model_config`,
    then every weight through `load_weights`.
    """
    from .model import model_from_config  # here, so checkpoints stay usable without the model code

    payload = load_checkpoint(path, map_location="cpu")
    model = model_from_config(dict(payload["model_config"]))
    load_weights(model, payload["state_dict"])
    return model.to(device).eval(), payload


def preprocessing_arguments(payload):
    """The keyword arguments that prepare photographs as the checkpoint's model was trained:
    `size`, `mean`, `std`, `clahe`, `clahe_channel` and, where the checkpoint records
    one, the disc `threshold`; for `data_prep.pipeline.preprocess` and
    `data_prep.dataset.LesionDataset` alike. Checkpoints older than a key get its default
    (CLAHE on, in the L channel of Lab).
    """
    options = payload["preprocessing"]
    arguments = {"size": payload["input_size"], "mean": payload["mean"], "std": payload["std"],
                 "clahe": options.get("clahe", True),
                 "clahe_channel": options.get("clahe_channel", "lab")}
    if "threshold" in options:
        arguments["threshold"] = options["threshold"]
    return arguments


def _generator_state(generator):
    if isinstance(generator, np.random.Generator):
        return generator.bit_generator.state  # nested dict of str and (128-bit) int
    if isinstance(generator, torch.Generator):
        return generator.get_state()  # uint8 tensor
    raise ValueError("generators must be numpy.random.Generator or torch.Generator, got "
                     f"{type(generator).__name__}")


def rng_state(generators=()):
    """Random states of Python, NumPy's global RNG, torch (CPU and CUDA) and `generators`.

    All plain lists, ints, floats and tensors, so the result can go into a checkpoint.
    """
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [_generator_state(generator) for generator in generators],
    }


def set_rng_state(state, generators=()):
    """Restore what `rng_state(generators)` returned (the same generators, in order)."""
    if len(state["generators"]) != len(generators):
        raise ValueError(
            f"the state holds {len(state['generators'])} generators, got {len(generators)} to "
            "restore"
        )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss,
                         cached_gaussian))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        # resuming on a machine with fewer GPUs restores the ones it has
        for device, cuda_state in enumerate(state["torch_cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
    for generator, saved in zip(generators, state["generators"]):
        if isinstance(generator, np.random.Generator):
            generator.bit_generator.state = saved
        elif isinstance(generator, torch.Generator):
            generator.set_state(saved)
        else:
            raise ValueError(f"cannot restore a {type(generator).__name__}")

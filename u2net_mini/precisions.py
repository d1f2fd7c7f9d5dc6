"""
# Precisions: does a faster number format change what the model finds?

    python -m u2net_mini.bench --checkpoint C --data D    # the speed table, then this one

bf16 and int8 run the model faster or smaller than fp32, and each rounds differently. The
project takes a precision for a trained model only if it moves no lesion's AUPR on the
test split by more than a limit (`AUPR_LIMITS`): 0.005 for bf16 (it changes every
operation of the graph, a little), 0.01 for int8 (the issue's bar for shipping
`xs_mt_int8.onnx`). Every precision scores the same photographs with the evaluation's own
code (`evaluate.score_dataset`), so the shift is the precision's and nothing else's.
docs/performance.md has the table for the shipped model.
"""

import numpy as np
import torch

from .inference import OnnxSession, TorchSession, bf16_supported

AUPR_LIMITS = {"bf16": 0.005, "int8": 0.01}  # the largest AUPR shift from fp32 allowed


def precision_aupr(checkpoint, data, split="test", cache_dir=None,
                   precisions=("fp32", "bf16", "int8"), calibration_photos=None):
    """AUPR per lesion of a checkpoint on `split` of the data folder `data`, in each precision.

    fp32 is the optimized torch path (the model as trained), bf16 the same in bfloat16
    (skipped where the CPU lacks it), int8 the `export --int8` graph calibrated on
    `calibration_photos` training photographs of `data` (default 16, or all there are).
    Every precision scores the same inputs (`metrics.LesionScores`): the checkpoint's
    preprocessing, no augmentation. Returns {"split", "images", "aupr" {precision: {lesion}},
    "shift" and "max_shift" (|difference| from fp32; a lesion without positive pixels scores
    nan and is left out), "limit", "within_limit", "skipped" {precision: reason}}.
    """
    from data_prep.dataset import LesionDataset

    from .checkpoint import preprocessing_arguments
    from .evaluate import score_dataset
    from .metrics import LesionScores

    unknown = [name for name in precisions if name not in ("fp32", "bf16", "int8")]
    if unknown or "fp32" not in precisions:
        raise ValueError(f"precisions must include fp32 and be some of fp32, bf16, int8, "
                         f"got {list(precisions)}")
    sessions, skipped, payload = _sessions(checkpoint, data, precisions, calibration_photos,
                                           cache_dir)
    dataset = LesionDataset(data, split, lesions=payload["lesions"], cache_dir=cache_dir,
                            **preprocessing_arguments(payload))
    aupr = {}
    for name, session in sessions.items():  # evaluate's own scoring, one precision at a time
        def predict(x, y, indices, session=session):
            return torch.from_numpy(session(x))  # (B, C, s, s)

        scores = score_dataset(predict, dataset, {"square": LesionScores(payload["lesions"])})
        aupr[name] = scores["square"].aupr()
    result = {"split": split, "images": len(dataset), "aupr": aupr, "shift": {}, "max_shift": {},
              "limit": {}, "within_limit": {}, "skipped": skipped}
    for name in sessions:
        if name == "fp32":
            continue
        shift = {lesion: abs(aupr[name][lesion] - aupr["fp32"][lesion])
                 for lesion in payload["lesions"]}
        finite = [value for value in shift.values() if np.isfinite(value)]
        result["shift"][name] = shift
        result["max_shift"][name] = max(finite) if finite else float("nan")
        result["limit"][name] = AUPR_LIMITS[name]
        result["within_limit"][name] = bool(result["max_shift"][name] <= AUPR_LIMITS[name])
    return result


def _sessions(checkpoint, data, precisions, calibration_photos, cache_dir):
    """({precision: session}, {precision: why skipped}, the checkpoint's payload)."""
    from data_prep.idrid import IDRiD

    from .checkpoint import load_model
    from .export import onnx_bytes
    from .quantize import CALIBRATION_PHOTOS, calibration_from_data

    model, payload = load_model(checkpoint)  # once: each session below works on its own copy
    sessions, skipped = {"fp32": TorchSession(model, payload)}, {}
    if "bf16" in precisions:
        if bf16_supported("cpu"):
            sessions["bf16"] = TorchSession(model, payload, bf16=True)
        else:
            skipped["bf16"] = "this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"
    if "int8" in precisions:
        count = calibration_photos
        if count is None:
            count = min(CALIBRATION_PHOTOS, len(IDRiD(data, "train")))
        calibration = calibration_from_data(payload, data, count, cache_dir=cache_dir)
        sessions["int8"] = OnnxSession(onnx_bytes(model, payload, calibration=calibration))
    return sessions, skipped, payload


def aupr_table(check):
    """`precision_aupr`'s result as a Markdown table: a row per precision, its shift from fp32."""
    from .metrics import lesion_mean

    lesions = list(check["aupr"]["fp32"])
    lines = [f"| precision | {' | '.join(lesions)} | mean | largest shift from fp32 |",
             "|---|" + "---|" * (len(lesions) + 2)]
    for name, values in check["aupr"].items():
        mean = lesion_mean([values[lesion] for lesion in lesions])
        shift = ""
        if name != "fp32":
            verdict = "within" if check["within_limit"][name] else "beyond"
            shift = f"{check['max_shift'][name]:.4f} ({verdict} {check['limit'][name]})"
        lines.append(f"| {name} | " + " | ".join(f"{values[lesion]:.4f}" for lesion in lesions)
                     + f" | {mean:.4f} | {shift} |")
    for name, reason in check["skipped"].items():
        lines.append(f"| {name} | skipped: {reason} |" + " |" * (len(lesions) + 1))
    return "\n".join(lines)

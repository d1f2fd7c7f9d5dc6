"""Ship the int8 twin of a shipped model (u2net_mini/weights/NAME_int8.onnx) with its record.

Run by hand at development time, after `scripts/ship_model.py`:

    python scripts/ship_int8.py --name xs_mt

exports `u2net_mini/weights/NAME.pt` with `export --int8` (calibrated on 16 training
photographs of the shipped IDRiD copy), scores fp32, bf16 and int8 on the real test split
at the paper's setting (the 512 px square; `precisions.precision_aupr`), and writes
`NAME_int8.onnx` and `NAME_int8.json` (the AUPR table, the calibration photographs, the
file's size and SHA-256, the commit) only if the file is at most 0.4 MB and int8 moves no
lesion's AUPR by more than 0.01 from fp32. Otherwise it prints the table and exits 1,
writing nothing. Existing files are replaced only with --force.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import onnxruntime

from data_prep.shipped import idrid_root
from u2net_mini.atomic import atomic_write
from u2net_mini.checkpoint import load_model
from u2net_mini.export import export_onnx
from u2net_mini.precisions import aupr_table, precision_aupr
from u2net_mini.quantize import calibration_from_data
from u2net_mini.shipped import WEIGHTS_DIR

MAX_BYTES = 400_000  # 0.4 MB: the size a phone app's model should stay within (fp32 is 1.33 MB)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_model import git_commit  # noqa: E402  (the same provenance as the checkpoints)


def main(argv=None):
    # One script, read top to bottom: parse, export, score, refuse or write with the record.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--name", default="xs_mt", help="the shipped model to quantize (default xs_mt)"
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    source = WEIGHTS_DIR / f"{args.name}.pt"
    target, record_path = (
        WEIGHTS_DIR / f"{args.name}_int8.onnx",
        WEIGHTS_DIR / f"{args.name}_int8.json",
    )
    if not source.is_file():
        print(f"error: no shipped model {source}", file=sys.stderr)
        return 2
    if (target.exists() or record_path.exists()) and not args.force:
        print(
            f"error: {target.name} or {record_path.name} exists; pass --force to replace",
            file=sys.stderr,
        )
        return 2
    model, payload = load_model(source)
    calibration = calibration_from_data(payload, idrid_root(), label="data_prep/shipped/idrid")
    with tempfile.TemporaryDirectory() as folder:
        report = export_onnx(model, Path(folder) / "int8.onnx", payload, calibration=calibration)
        data = Path(report["path"]).read_bytes()
    check = precision_aupr(source, idrid_root(), "test")
    print(aupr_table(check))
    print(
        f"\nint8 file: {len(data):,} bytes (at most {MAX_BYTES:,}); "
        f"mean |Δy_hat| vs torch on calibration "
        f"photographs {report['mean_abs_diff']:.2g}"
    )
    if len(data) > MAX_BYTES or not check["within_limit"]["int8"]:
        print("not shipped: too large or AUPR moved too far", file=sys.stderr)
        return 1
    commit, dirty = git_commit()
    record = {
        "name": f"{args.name}_int8",
        "from": f"{args.name}.pt",
        "from_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "command": f"python -m u2net_mini.export --checkpoint u2net_mini/weights/{args.name}.pt "
        f"--onnx {args.name}_int8.onnx --int8",
        "commit": commit,
        "uncommitted_changes_in_code": dirty,
        "onnxruntime": onnxruntime.__version__,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "calibration": calibration.record,
        "check_vs_torch": {
            key: report[key] for key in ("mean_abs_diff", "max_abs_diff", "tolerance")
        },
        "test_512px_square": {
            key: check[key]
            for key in ("split", "images", "aupr", "shift", "max_shift", "limit", "skipped")
        },
    }
    with atomic_write(target) as file:
        file.write(data)
    with atomic_write(record_path, "w") as file:
        json.dump(record, file, indent=2)
    print(f"wrote {target} and {record_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command-line benchmark: ``monai-dicomseg from-nifti`` / ``to-nifti`` against dcmqi's binaries.

Same data, same run, each tool as a fresh process (start-up included, as a
user sees it): the 512 x 512 x 200 CT series with 100 ellipsoid labels of
:func:`_common.big_case` (cached under ``benchmarks/.cache``).

* from-nifti: ``monai-dicomseg from-nifti LABELS SERIES OUT --metadata META``
  vs ``itkimage2segimage --inputImageList LABELS --inputDICOMDirectory SERIES
  --inputMetadata META --outputDICOM OUT`` (both BINARY, empty frames omitted).
* to-nifti: ``monai-dicomseg to-nifti SEG OUT`` vs ``segimage2itkimage
  --inputDICOM SEG -t nifti --mergeSegments`` (one label map each), on the
  SEG dcmqi wrote; plus ours with ``--source``.

Wall-clock medians (``_common.report``) and, because the wall clock is noisy
on a shared machine, the median CPU time (user + sys) of each command.

Run: ``.venv/bin/python benchmarks/cli.py [--repeats N]``.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, big_case, median_time, report  # noqa: E402

from monai_dicomseg.io.source_series import load_source_geometry, monai_affine_from_lps, to_monai_array  # noqa: E402


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found (pip install dcmqi / pip install -e .)")
    return found


def _inputs() -> tuple[Path, Path, Path]:
    """``(series folder, labels NIfTI, dcmqi metadata JSON)`` of the big case."""
    series, labels = big_case()
    folder = next(p for p in CACHE.iterdir() if p.name.startswith(f"{labels.shape[0]}x{labels.shape[1]}x"))
    series_dir = folder / "series"
    nifti, meta = folder / "labels_itk.nii.gz", folder / "dcmqi_meta.json"
    if not nifti.exists():
        source = load_source_geometry(series_dir)
        generation = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
        order = [generation[str(ds.SOPInstanceUID)] for ds in source.datasets]
        sorted_labels = labels[order]
        image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(sorted_labels)),
                                    monai_affine_from_lps(source.geometry.affine, sorted_labels.shape[0]))
        image.set_qform(image.affine, code=1)
        nibabel.save(image, str(nifti))
    if not meta.exists():
        attributes = [{
            "labelID": n, "SegmentLabel": f"organ {n}", "SegmentAlgorithmType": "AUTOMATIC",
            "SegmentAlgorithmName": "benchmark",
            "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                                                      "CodeMeaning": "Anatomical Structure"},
            "SegmentedPropertyTypeCodeSequence": {"CodeValue": "10200004", "CodingSchemeDesignator": "SCT",
                                                  "CodeMeaning": "Liver"},
            "recommendedDisplayRGBValue": [(37 * n) % 256, (91 * n) % 256, (173 * n) % 256],
        } for n in range(1, int(labels.max()) + 1)]
        meta.write_text(json.dumps({"ContentCreatorName": "bench", "SeriesDescription": "benchmark",
                                    "SeriesNumber": "300", "InstanceNumber": "1",
                                    "segmentAttributes": [attributes]}))
    return series_dir, nifti, meta


CPU: dict[str, list[float]] = {}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], label: str) -> None:
    before = _cpu()
    result = subprocess.run(command, capture_output=True, text=True)
    CPU.setdefault(label, []).append(_cpu() - before)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout[-2000:]}"
                         f"\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours = [sys.executable, "-m", "monai_dicomseg"]
    series_dir, nifti, meta = _inputs()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours_seg, dcmqi_seg = work / "ours.dcm", work / "dcmqi.dcm"
        t_ours, _ = median_time(lambda: _run([*ours, "from-nifti", str(nifti), str(series_dir), str(ours_seg),
                                              "--metadata", str(meta), "--overwrite"], "ours from-nifti"), args.repeats)
        t_dcmqi, _ = median_time(lambda: _run([
            _tool("itkimage2segimage"), "--inputImageList", str(nifti), "--inputDICOMDirectory", str(series_dir),
            "--inputMetadata", str(meta), "--outputDICOM", str(dcmqi_seg)], "dcmqi itkimage2segimage"), args.repeats)
        print(f"512x512x200, 100 labels; median of {args.repeats}; each a fresh process")
        report("from-nifti (BINARY)", t_ours, t_dcmqi, other="dcmqi")
        print(f"{'':<38} sizes: ours {ours_seg.stat().st_size / 1e6:.1f} MB, "
              f"dcmqi {dcmqi_seg.stat().st_size / 1e6:.1f} MB")

        def dcmqi_to_nifti() -> None:
            out = work / "dcmqi_out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            _run([_tool("segimage2itkimage"), "--inputDICOM", str(dcmqi_seg), "--outputDirectory", str(out),
                  "-t", "nifti", "-p", "seg", "--mergeSegments"], "dcmqi segimage2itkimage --mergeSegments")

        for name, seg in (("dcmqi's SEG", dcmqi_seg), ("our SEG", ours_seg)):
            t_ours, _ = median_time(lambda: _run([*ours, "to-nifti", str(seg), str(work / "ours.nii.gz"),
                                                  "--overwrite"], f"ours to-nifti ({name})"), args.repeats)
            t_source, _ = median_time(lambda: _run([*ours, "to-nifti", str(seg), str(work / "src.nii.gz"),
                                                    "--source", str(series_dir), "--overwrite"], f"ours to-nifti --source ({name})"),
                                       args.repeats)
            if seg is dcmqi_seg:
                t_dcmqi, _ = median_time(dcmqi_to_nifti, args.repeats)
            report(f"to-nifti ({name})", t_ours, t_dcmqi, other="dcmqi")
            report(f"to-nifti --source ({name})", t_source, t_dcmqi, other="dcmqi")
    print("CPU time (user + sys) per run, median (robust when the machine is shared):")
    for command, times in CPU.items():
        print(f"  {statistics.median(times) * 1000:8.1f} ms  {command}")


if __name__ == "__main__":
    main()

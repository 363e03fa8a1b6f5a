"""Measuring swaps: pure metrics, the shot walker, the HTML/PNG report and run comparisons.

    from vfxswap.eval import metrics                      # pure functions over arrays
    from vfxswap.eval.inputs import resolve_spec          # PLATE + SWAPPED (+ matte, patches), by frame number
    from vfxswap.eval.shot import evaluate_shot           # per-frame and shot metrics
    from vfxswap.eval.report import write_report          # metrics.json, report.html, contact_sheet.png
    from vfxswap.eval.compare import compare_runs         # eval reports side by side
    from vfxswap.eval.recon import reconstruct            # SSIM/PSNR on held-out faceset faces
"""

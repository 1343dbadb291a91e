"""The offline demo (README's first command): a shipped real scan, shipped zoo models, metrics, a figure."""

from mrizoo.demo.run import BASELINES, DEFAULT_MODELS, DemoConfig, DemoResult, load_slice, run_demo
from mrizoo.demo.scan import DEMO_SCAN, DemoScanSpec, demo_scan_path, make_demo_scan

__all__ = ["BASELINES", "DEFAULT_MODELS", "DemoConfig", "DemoResult", "run_demo", "load_slice", "DEMO_SCAN", "DemoScanSpec",
           "demo_scan_path", "make_demo_scan"]
